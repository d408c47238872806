package publish

import (
	"context"
	"time"
)

// VEXDocument is a published statement that the project is not affected
// by a vulnerability of a component it ships (or, revised, that it is
// after all), in its two formats.
type VEXDocument struct {
	// ID is the incident ID ("2026-004"); the files are
	// vex/ID.csaf.json and vex/ID.openvex.json.
	ID            string
	Advisory      string // upstream advisory ID
	Summary       string
	Components    []string // "rack 2.1.2"
	Status        string   // in words: "not affected: component not present"
	Date          time.Time
	CSAF, OpenVEX []byte
}

// VEXSource is a Source that also lists VEX statements; the site shows
// them on its index and serves their documents.
type VEXSource interface {
	VEX(ctx context.Context) ([]VEXDocument, error)
}
