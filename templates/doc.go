// Package templates holds the text of every notice cvd sends
// (acknowledgements, key problems, held posts, receipts), as Go text
// templates embedded in the binary. A rendered subject is a single line
// that can never carry a header of its own.
package templates
