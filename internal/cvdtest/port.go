package cvdtest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
)

// FreeAddr returns a loopback address free now, for a program that binds
// it later (Postfix, rspamd). The port lies below the kernel's ephemeral
// range, so no outgoing connection and no listener on port 0 can take it
// meanwhile; only another FreeAddr could, by a random draw.
func FreeAddr(t testing.TB) string {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &low)
	}
	lo, hi := 10000, low
	if hi-lo < 1000 {
		lo, hi = 1024, 10000
	}
	for range 200 {
		addr := fmt.Sprintf("127.0.0.1:%d", lo+rand.IntN(hi-lo))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr
	}
	t.Fatalf("no free loopback port between %d and %d", lo, hi)
	return ""
}
