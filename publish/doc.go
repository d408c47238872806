// Package publish turns what an incident knows at release into the
// artefacts that users, CNAs and scanners consume: CVSS scores, CVE Record
// JSON 5.x, OSV and CSAF 2.0 records, the plain-text advisory, a CVE request
// mail, and the project's public web face (security.txt, Web Key Directory,
// advisory pages, acknowledgements and an Atom feed), with the announce
// list's RFC 8058 one-click unsubscribe page, and mbox files of public
// messages.
//
// It works on plain data (Advisory, Project, PublicKey) that the embargo
// package fills at release, and knows nothing of incidents or mail.
package publish
