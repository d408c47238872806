package lists

import (
	"strings"

	"github.com/emersion/go-message/textproto"
)

// ShouldAutoReply reports whether cvd may answer a message automatically
// (RFC 3834 §2): not to automatic mail, list traffic, bulk mail, bounces or
// the null sender.
func ShouldAutoReply(h textproto.Header, envelopeFrom string) bool {
	if envelopeFrom == "" {
		return false
	}
	local, _, _ := strings.Cut(strings.ToLower(envelopeFrom), "@")
	if local == "mailer-daemon" || local == "postmaster" || strings.HasSuffix(local, "-request") || strings.HasPrefix(local, "owner-") {
		return false
	}
	if v := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); v != "" && v != "no" {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("Precedence"))) {
	case "bulk", "list", "junk":
		return false
	}
	for f := h.Fields(); f.Next(); {
		k := strings.ToLower(f.Key())
		if strings.HasPrefix(k, "list-") || k == "x-loop" || k == "x-autoreply" || k == "x-autorespond" {
			return false
		}
	}
	return true
}
