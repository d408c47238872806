package crypto

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

func TestArmorShared(t *testing.T) {
	for _, tailLen := range []int{0, 1, 2, 3, 47, 48, 49, 1000, 4099} {
		tail := make([]byte, tailLen)
		rand.Read(tail)
		s := newSharedTail(tail)
		for _, headLen := range []int{0, 1, 2, 3, 4, 5, 94, 95, 96, 300} {
			head := make([]byte, headLen)
			rand.Read(head)
			whole := append(append([]byte(nil), head...), tail...)
			want := appendArmor(nil, "PGP MESSAGE", whole)
			got := appendArmorShared(nil, "PGP MESSAGE", head, s, nil)
			if !bytes.Equal(got, want) {
				t.Fatalf("head %d tail %d:\n%s\nwant\n%s", headLen, tailLen, got, want)
			}
			block, err := armor.Decode(bytes.NewReader(got))
			if err != nil {
				t.Fatalf("head %d tail %d: %v", headLen, tailLen, err)
			}
			var dec bytes.Buffer
			if _, err := dec.ReadFrom(block.Body); err != nil || !bytes.Equal(dec.Bytes(), whole) {
				t.Fatalf("head %d tail %d: round trip: %v", headLen, tailLen, err)
			}
		}
	}
}
