package lists

import (
	"context"
	"database/sql"
	"strconv"
	"time"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/store"
)

// DefaultMaxSignatureAge is how old a signature on a command or an
// announcement may be when Service.MaxSignatureAge is zero.
const DefaultMaxSignatureAge = 7 * 24 * time.Hour

// SignatureFutureSkew is how far in the future a signature may be dated
// (a sender whose clock runs ahead).
const SignatureFutureSkew = 15 * time.Minute

func (s *Service) maxSignatureAge() time.Duration {
	if s.MaxSignatureAge > 0 {
		return s.MaxSignatureAge
	}
	return DefaultMaxSignatureAge
}

// useSignatureTx spends the signature of o, a message opened with a good
// signature, inside tx: it returns "" when the signature is fresh and was
// never used before (on any list, or the announce list), and records it;
// otherwise it returns why it is refused, in words for the sender. The
// record names the signature itself (crypto.Opened.SignatureID), so no
// re-encoding of the message around it counts again.
func (s *Service) useSignatureTx(ctx context.Context, tx *sql.Tx, o *crypto.Opened, now time.Time) (string, error) {
	switch {
	case o.SignatureID == "" || o.SignedAt.IsZero():
		return "the signature carries no usable creation time; sign a new message", nil
	case o.SignedAt.After(now.Add(SignatureFutureSkew)):
		return "the signature is dated in the future; check your clock and sign a new message", nil
	case now.Sub(o.SignedAt) > s.maxSignatureAge():
		return "the signature is older than " + human(s.maxSignatureAge()) + "; sign a new message", nil
	}
	used, err := store.SignatureSeenTx(ctx, tx, "sig:"+o.SignatureID, now)
	if err != nil {
		return "", err
	}
	if used {
		return "this signed message was used before; sign a new one", nil
	}
	return "", nil
}

func human(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		n := int(d / (24 * time.Hour))
		if n == 1 {
			return "1 day"
		}
		return strconv.Itoa(n) + " days"
	}
	return d.String()
}
