package embargo

import (
	"context"
	"errors"
	"fmt"

	"github.com/cvd-project/cvd/publish"
)

// CVESettings say how the project gets its CVE IDs (the [cve] settings).
type CVESettings struct {
	// CNA is true when the project is a CNA: it reserves its own IDs and
	// submits the records cvd writes.
	CNA bool
	// RequestTo is the CNA that IDs are requested from otherwise.
	RequestTo string
}

// CVERequest returns the mail asking a CNA for a CVE ID for incident id:
// to that address, else the configured cve.request_to. A CNA requests
// nothing: it is told how to proceed instead.
func (d *Desk) CVERequest(ctx context.Context, id, to string) (publish.Mail, error) {
	if d.CVE.CNA {
		return publish.Mail{}, refuse("the project is a CNA (cve.cna = true), it requests no ID: reserve one with your CVE Services client "+
			"(e.g. cvelib's 'cve reserve'), record it with 'cvd incident cve %s CVE-YYYY-NNNN' (or x-cve:), then "+
			"'cvd incident export %s --format cve' is the record to submit", id, id)
	}
	if to == "" {
		to = d.CVE.RequestTo
	}
	if to == "" {
		return publish.Mail{}, refuse("no CNA to ask: set cve.request_to in the configuration to the address of the CNA you request IDs from, or give --to ADDRESS")
	}
	a, err := d.Advisory(ctx, id)
	if err != nil {
		return publish.Mail{}, err
	}
	if a.CVE != "" {
		return publish.Mail{}, refuse("%s has %s already", id, a.CVE)
	}
	m, err := publish.CVERequest(a, d.IntakeAddress(), to)
	if err != nil {
		return publish.Mail{}, fmt.Errorf("CVE request for %s: %w (the request needs the advisory's title, description and affected versions: set them first)", id, err)
	}
	return m, nil
}

// CVERecord returns incident id's CVE record (CVE JSON 5), or why there
// is none yet.
func (d *Desk) CVERecord(ctx context.Context, id string) ([]byte, error) {
	a, err := d.Advisory(ctx, id)
	if err != nil {
		return nil, err
	}
	b, err := publish.CVERecord(a)
	if errors.Is(err, publish.ErrNoCVE) {
		switch {
		case a.CVE == "" && d.CVE.CNA:
			return nil, fmt.Errorf("%s has no CVE ID yet: reserve one and record it with 'cvd incident cve %s CVE-YYYY-NNNN'", id, id)
		case a.CVE == "":
			return nil, fmt.Errorf("%s has no CVE ID yet: request one ('cvd incident cve %s --request') and record it with 'cvd incident cve %s CVE-YYYY-NNNN'", id, id, id)
		default:
			return nil, fmt.Errorf("no CNA organisation ID: set cve.org_id (and cve.short_name) in the configuration to the CNA's (%s)",
				map[bool]string{true: "the project's own", false: "the CNA that assigned " + a.CVE}[d.CVE.CNA])
		}
	}
	return b, err
}
