package cvdtest

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOutboxOrder: two messages written in the same second, the first at
// 45,577 µs and the second at 318,748 µs, come back in that order,
// although "M318748" sorts before "M45577" by name.
func TestOutboxOrder(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "new"), 0o700)
	for name, to := range map[string]string{
		"1795978723.M318748R0babff7d3df0975a.example.org": "second@example.net",
		"1795978723.M45577Rfcefc835bcb92f5b.example.org":  "first@example.net",
		"1795978722.M999999R15bcc0bcd9d6786a.example.org": "zeroth@example.net",
	} {
		if err := os.WriteFile(filepath.Join(dir, "new", name), []byte("Delivered-To: "+to+"\r\n\r\nx\r\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, m := range Outbox(t, dir) {
		got = append(got, m.DeliveredTo)
	}
	if len(got) != 3 || got[0] != "zeroth@example.net" || got[1] != "first@example.net" || got[2] != "second@example.net" {
		t.Errorf("outbox order %v, want zeroth, first, second", got)
	}
}
