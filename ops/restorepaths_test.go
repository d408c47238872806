package ops

import (
	"slices"
	"testing"
)

func TestRewritePaths(t *testing.T) {
	in := `data_dir = "/srv/cvd" # "/srv/cvd/x"
database = '/srv/cvd/db/cvd.db'
[pgp]
key_file = "/srv/cvd/keys/project.asc"
public_file = "/srv/cvd-other/project.pub.asc"
[[embargo.team]]
key_file = "/srv/cvd/../etc/k.asc"
note = """
/srv/cvd/keys/x.asc
"""
name = "a \"quoted\" /srv/cvd/keys/y"
rel = "keys/z.asc"
`
	want := `data_dir = "." # "/srv/cvd/x"
database = "db/cvd.db"
[pgp]
key_file = "keys/project.asc"
public_file = "/srv/cvd-other/project.pub.asc"
[[embargo.team]]
key_file = "/srv/cvd/../etc/k.asc"
note = """
/srv/cvd/keys/x.asc
"""
name = "a \"quoted\" /srv/cvd/keys/y"
rel = "keys/z.asc"
`
	got, old := rewritePaths([]byte(in), "/srv/cvd")
	if string(got) != want {
		t.Errorf("rewritePaths:\n%s\nwant:\n%s", got, want)
	}
	if w := []string{"/srv/cvd", "/srv/cvd/db/cvd.db", "/srv/cvd/keys/project.asc"}; !slices.Equal(old, w) {
		t.Errorf("rewritten %q, want %q", old, w)
	}
	if got, _ := rewritePaths([]byte(in), ""); string(got) != in {
		t.Errorf("without a data folder the text changed:\n%s", got)
	}
}
