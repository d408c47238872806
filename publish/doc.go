// Package publish turns what an incident knows at release into the
// artefacts that users, CNAs and scanners consume: CVSS scores, CVE Record
// JSON 5.x, OSV and CSAF 2.0 records, the plain-text advisory, a CVE request
// mail, and the project's public web face (security.txt, Web Key Directory,
// advisory pages, acknowledgements and an Atom feed).
package publish

import (
	_ "github.com/pandatix/go-cvss/31" // CVSS v3.1 scoring
	_ "github.com/pandatix/go-cvss/40" // CVSS v4.0 scoring
)
