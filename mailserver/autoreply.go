package mailserver

import (
	"net/mail"
	"strings"
)

// ShouldAutoReply reports whether cvd may send an automatic answer
// (acknowledgement, command result, refusal notice) to a message with
// header h and envelope sender from, following RFC 3834 and list practice.
// It says no to: a null sender; MAILER-DAEMON or postmaster; Auto-Submitted
// other than "no"; any List-Id or List-* header; Precedence bulk, list,
// junk or auto-reply; X-Auto-Response-Suppress asking for no auto-reply
// (All, AutoReply, DR, OOF); and Microsoft's X-Auto-Submitted/auto-reply
// markers.
func ShouldAutoReply(h mail.Header, from string) bool {
	from = strings.Trim(strings.TrimSpace(from), "<>")
	if from == "" {
		return false
	}
	local := strings.ToLower(from)
	if at := strings.LastIndexByte(local, '@'); at >= 0 {
		local = local[:at]
	}
	if local == "mailer-daemon" || local == "postmaster" {
		return false
	}
	if v, ok := h["Auto-Submitted"]; ok {
		for _, s := range v {
			kw, _, _ := strings.Cut(s, ";")
			kw = strings.ToLower(strings.TrimSpace(stripComment(kw)))
			if kw != "no" {
				return false
			}
		}
	}
	for name := range h {
		n := strings.ToLower(name)
		if strings.HasPrefix(n, "list-") || n == "x-autoreply" || n == "x-autorespond" || n == "x-auto-submitted" {
			return false
		}
	}
	switch strings.ToLower(strings.TrimSpace(stripComment(h.Get("Precedence")))) {
	case "bulk", "list", "junk", "auto-reply":
		return false
	}
	for _, v := range strings.Split(h.Get("X-Auto-Response-Suppress"), ",") {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "all", "autoreply", "dr", "oof":
			return false
		}
	}
	return true
}

// stripComment drops a trailing RFC 5322 comment: "auto-replied (vacation)".
func stripComment(s string) string {
	if i := strings.IndexByte(s, '('); i >= 0 {
		return s[:i]
	}
	return s
}
