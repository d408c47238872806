package embargo

import (
	"strings"
	"testing"
)

// TestAttachedFileNames: a file name from a post or the command line
// cannot reach a mail header or a path unchecked.
func TestAttachedFileNames(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"../../etc/passwd", "passwd"},
		{`C:\Users\x\fix.patch`, "fix.patch"},
		{"0001-fix.patch", "0001-fix.patch"},
	} {
		f := File{Name: tc.name, Data: []byte("x")}
		if err := checkFile(&f); err != nil || f.Name != tc.want {
			t.Errorf("%q: %v, name %q, want %q", tc.name, err, f.Name, tc.want)
		}
	}
	if f := (File{Name: "a.patch", Data: []byte("x")}); checkFile(&f) != nil || f.ContentType != "text/x-patch" {
		t.Errorf("a.patch: content type %q", f.ContentType)
	}
	for _, bad := range []File{
		{Name: "evil\r\nBcc: x@example.net", Data: []byte("x")},
		{Name: `a"b.patch`, Data: []byte("x")},
		{Name: "", Data: []byte("x")},
		{Name: strings.Repeat("a", 300), Data: []byte("x")},
		{Name: "empty.patch"},
		{Name: "big.bin", Data: make([]byte, MaxFileSize+1)},
	} {
		f := bad
		if err := checkFile(&f); err == nil || !IsRefusal(err) {
			t.Errorf("%q (%d bytes) accepted", bad.Name, len(bad.Data))
		}
	}
	f := File{Name: "x.bin", ContentType: "text/plain\r\nX: y", Data: []byte("x")}
	if err := checkFile(&f); err != nil || f.ContentType != "application/octet-stream" {
		t.Errorf("content type with a line break: %v %q", err, f.ContentType)
	}
}

// TestPostedFiles: x-notify takes the attachments of the post, not its
// text or keys.
func TestPostedFiles(t *testing.T) {
	entity := "Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nx-notify\r\n" +
		"--B\r\nContent-Type: text/x-patch\r\nContent-Disposition: attachment; filename=\"fix.patch\"\r\nContent-Transfer-Encoding: base64\r\n\r\nZGlmZgo=\r\n" +
		"--B\r\nContent-Type: application/pgp-keys; name=\"key.asc\"\r\n\r\n-----BEGIN PGP PUBLIC KEY BLOCK-----\r\n" +
		"--B\r\nContent-Type: application/octet-stream; name=\"repro.bin\"\r\n\r\nRR\r\n--B--\r\n"
	fs, err := postedFiles([]byte(entity))
	if err != nil || len(fs) != 2 || fs[0].Name != "fix.patch" || string(fs[0].Data) != "diff\n" || fs[1].Name != "repro.bin" {
		t.Fatalf("%v %+v", err, fs)
	}
	if fs, err := postedFiles([]byte("Content-Type: text/plain\r\n\r\nx-notify\r\n")); err != nil || len(fs) != 0 {
		t.Errorf("plain post: %v %+v", err, fs)
	}
}
