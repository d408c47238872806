// Package templates holds the text of every notice cvd sends
// (acknowledgements, key problems, held posts, receipts, pre-notifications,
// the announcement), as Go text templates embedded in the binary. A
// rendered subject is a single line that can never carry a header of its
// own.
//
// An operator may replace any notice with a file NAME.txt in an override
// folder (the configuration's templates_dir): Load reads and checks the
// folder against a sample incident, and Use makes the result the set that
// Render uses in this process. cvd serve does this once at start, so the
// lists and embargo packages, which call Render, need no change; tests use
// a Set directly.
package templates
