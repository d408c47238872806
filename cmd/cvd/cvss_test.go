package main

import (
	"strings"
	"testing"
)

func TestCVSSCommand(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCVD(t, dir, nil, "cvss", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"CVSS version:  3.1", "Base score:    9.8", "Severity:      Critical",
		"Attack Vector (AV): Network", "Scope (S): Unchanged", "Availability Impact (A): High"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = runCVD(t, dir, nil, "cvss", "CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/E:U")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"CVSS version:  4.0", "Score:         4.1 (CVSS-BT)", "Severity:      Medium",
		"Attack Requirements (AT): Present", "Exploit Maturity (E): Unreported"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	for _, tc := range []struct{ vector, want string }{
		{"CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", `metric AV: Attack Vector: invalid value "Q"`},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N", "metric SA"},
	} {
		code, out, errOut = runCVD(t, dir, nil, "cvss", tc.vector)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.vector, code, out, errOut, tc.want)
		}
	}
	if code, _, _ = runCVD(t, dir, nil, "cvss"); code != 2 {
		t.Errorf("no vector: exit %d, want 2", code)
	}
}
