// Package lists owns cvd's mailing lists: their addresses, members, roles,
// posting policy and fan-out.
package lists

import "strings"

// AddressKind says what a local address is for.
type AddressKind int

const (
	// NotLocal is an address outside cvd's domain.
	NotLocal AddressKind = iota
	// Unknown is in cvd's domain but is none of its addresses.
	Unknown
	// Security is security@DOMAIN (intake) or security+TAG@DOMAIN.
	Security
	// Announce is announce@DOMAIN (the public list) or announce+TAG@DOMAIN
	// (subscribe, unsubscribe, confirm-TOKEN).
	Announce
)

// Address is a parsed recipient address.
type Address struct {
	Kind AddressKind
	// Tag is the part after "+" in security+TAG@DOMAIN, lowercased.
	Tag string
}

// SecurityLocalPart is the local part of the intake address.
const SecurityLocalPart = "security"

// AnnounceLocalPart is the local part of the announce list's address.
const AnnounceLocalPart = "announce"

// ParseAddress classifies addr (local@domain) for a server of domain. The
// domain and the local part compare case-insensitively.
func ParseAddress(addr, domain string) Address {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || !strings.EqualFold(addr[at+1:], domain) {
		return Address{Kind: NotLocal}
	}
	local := strings.ToLower(addr[:at])
	base, tag, hasTag := strings.Cut(local, "+")
	if hasTag && tag == "" {
		return Address{Kind: Unknown}
	}
	switch base {
	case SecurityLocalPart:
		return Address{Kind: Security, Tag: tag}
	case AnnounceLocalPart:
		return Address{Kind: Announce, Tag: tag}
	}
	return Address{Kind: Unknown}
}
