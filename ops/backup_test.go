package ops

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/store"
)

type entry struct {
	name string
	typ  byte
	body string
	// sum overrides the manifest's checksum.
	sum string
}

// archive builds a backup archive by hand, manifest first.
func archive(t *testing.T, entries []entry) []byte {
	m := Manifest{Format: BackupFormat, Schema: store.SchemaVersion(), Database: "data/cvd.db"}
	for _, e := range entries {
		s := sha256.Sum256([]byte(e.body))
		sum := hex.EncodeToString(s[:])
		if e.sum != "" {
			sum = e.sum
		}
		m.Files = append(m.Files, BackupFile{Name: e.name, Size: int64(len(e.body)), SHA256: sum})
	}
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	mj, _ := json.Marshal(m)
	tw.WriteHeader(&tar.Header{Name: manifestName, Size: int64(len(mj)), Mode: 0o600, Typeflag: tar.TypeReg})
	tw.Write(mj)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Mode: 0o600, Typeflag: typ}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		} else {
			h.Linkname = "/etc/passwd"
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	gz.Close()
	return b.Bytes()
}

// TestRestoreRefusesHostileArchives: an archive that would write outside
// the restore folder, plant a link, smuggle a file the manifest does not
// list or carry a file that fails its checksum is refused, and nothing of
// it stays.
func TestRestoreRefusesHostileArchives(t *testing.T) {
	conf := entry{name: configName, body: "domain = \"example.org\"\n"}
	db := entry{name: "data/cvd.db", body: "not a database"}
	for _, tc := range []struct {
		name    string
		entries []entry
		want    string
	}{
		{"dot-dot", []entry{conf, db, {name: "data/../../escape", body: "x"}}, "leaves the restore folder"},
		{"absolute", []entry{conf, db, {name: "/tmp/escape", body: "x"}}, "unexpected entry"},
		{"external dot-dot", []entry{conf, db, {name: "external/../../escape", body: "x"}}, "leaves the restore folder"},
		{"symlink", []entry{conf, db, {name: "data/keys/link", typ: tar.TypeSymlink}}, "not a regular file"},
		{"checksum", []entry{conf, {name: "data/cvd.db", body: "x", sum: strings.Repeat("0", 64)}}, "checksum"},
		{"not a database", []entry{conf, db}, "database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "r")
			_, err := Restore(context.Background(), bytes.NewReader(archive(t, tc.entries)), dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore: %v, want an error with %q", err, tc.want)
			}
			if es, _ := os.ReadDir(dir); len(es) > 0 {
				t.Errorf("a refused restore left %d entries in %s", len(es), dir)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape")); err == nil {
				t.Error("a file was written outside the restore folder")
			}
		})
	}
	// A folder that holds anything is never restored into.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cvd.db"), []byte("keep"), 0o600)
	if _, err := Restore(context.Background(), bytes.NewReader(archive(t, []entry{conf, db})), dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Restore into a used folder: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cvd.db")); string(b) != "keep" {
		t.Error("restore touched a used folder")
	}
}

func TestRewriteTopLevel(t *testing.T) {
	in := "# cvd\ndomain = \"x.org\"\ndata_dir = \"/var/lib/cvd\"\n\n[smtp]\ndata_dir = \"not top\"\n"
	got := string(rewriteTopLevel([]byte(in), "data_dir", `"."`))
	if want := "# cvd\ndomain = \"x.org\"\ndata_dir = \".\"\n\n[smtp]\ndata_dir = \"not top\"\n"; got != want {
		t.Errorf("got %q", got)
	}
	got = string(rewriteTopLevel([]byte("domain = \"x.org\"\n[smtp]\n"), "database", `"cvd.db"`))
	if want := "database = \"cvd.db\"\ndomain = \"x.org\"\n[smtp]\n"; got != want {
		t.Errorf("got %q", got)
	}
}
