package lists

import "testing"

func TestParseAddress(t *testing.T) {
	for addr, want := range map[string]Address{
		"security@example.org":           {Kind: Security},
		"Security@EXAMPLE.org":           {Kind: Security},
		"security+2026-001@example.org":  {Kind: Security, Tag: "2026-001"},
		"security+Bounce-AB@example.org": {Kind: Security, Tag: "bounce-ab"},
		"security+@example.org":          {Kind: Unknown},
		"root@example.org":               {Kind: Unknown},
		"announce@example.org":           {Kind: Announce},
		"Announce+Subscribe@example.org": {Kind: Announce, Tag: "subscribe"},
		"announce+@example.org":          {Kind: Unknown},
		"securityx@example.org":          {Kind: Unknown},
		"security@example.org.evil.net":  {Kind: NotLocal},
		"security@sub.example.org":       {Kind: NotLocal},
		"security":                       {Kind: NotLocal},
	} {
		if got := ParseAddress(addr, "example.org"); got != want {
			t.Errorf("ParseAddress(%q) = %+v, want %+v", addr, got, want)
		}
	}
}
