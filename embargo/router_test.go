package embargo

import (
	"sync"
	"testing"
	"time"
)

// Wake may be called from SMTP sessions while Run starts (go test -race).
func TestRouterWakeWhileRunning(t *testing.T) {
	r := &Router{Poll: time.Hour}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.wakeChan() }()
	go func() { defer wg.Done(); r.Wake() }()
	wg.Wait()
	select {
	case <-r.wakeChan():
	default:
		t.Error("a wake-up was lost")
	}
}
