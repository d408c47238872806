package lists

import (
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/templates"
)

// outerSubject is the outer Subject email's copies on list must have, or
// "" for the usual "[...]".
func (s *Service) outerSubject(list, email string) string {
	if s.OuterSubject == nil {
		return ""
	}
	return s.OuterSubject(list, email)
}

// sealOne seals inner to key with outer Subject subject ("": "[...]").
func (s *Service) sealOne(inner []byte, outer textproto.Header, key *crypto.Key, now time.Time, subject string) ([]byte, error) {
	if subject == "" {
		return crypto.Seal(inner, outer, s.Key, key, now)
	}
	out, err := crypto.SealFanoutSubject(inner, outer, s.Key, []*crypto.Key{key}, now, templates.EncodeHeader(subject))
	if err != nil {
		return nil, err
	}
	return out[0], nil
}
