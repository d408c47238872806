// Package templates holds the text of every notice cvd sends
// (acknowledgements, pre-notifications, announcements), overridable by the
// operator.
package templates
