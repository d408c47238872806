package accounts

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

func TestPasswordHash(t *testing.T) {
	pw := NewPassword()
	if len(pw) != 29 || strings.Count(pw, "-") != 5 || strings.ContainsAny(pw, "lo01") {
		t.Errorf("password %q", pw)
	}
	h := HashPassword(pw)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(h, pw) {
		t.Errorf("hash %q", h)
	}
	if !CheckPassword(h, pw) || CheckPassword(h, pw+"x") || CheckPassword(h, "") {
		t.Error("CheckPassword")
	}
	for _, bad := range []string{"", "$argon2id$v=19$m=0,t=2,p=1$AAAA$AAAA", "$argon2id$v=19$m=4194304,t=2,p=1$AAAA$AAAA", "$bcrypt$x$y$z$w"} {
		if CheckPassword(bad, pw) {
			t.Errorf("accepted %q", bad)
		}
	}
}

// However many logins arrive at once, no more than cap(hashSlots)
// argon2id computations (19 MiB each) run together.
func TestPasswordHashingBounded(t *testing.T) {
	var running, peak atomic.Int32
	argonKey = func(password, salt []byte, tm, memory uint32, threads uint8, keyLen uint32) []byte {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		running.Add(-1)
		return make([]byte, keyLen)
	}
	defer func() { argonKey = argon2.IDKey }()
	h := "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43)
	var wg sync.WaitGroup
	for range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			CheckPassword(h, "wrong")
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > int32(cap(hashSlots)) || p < 1 {
		t.Errorf("%d hashes ran at once, bound %d", p, cap(hashSlots))
	}
	t.Logf("300 concurrent checks: at most %d hashes at once", peak.Load())
}
