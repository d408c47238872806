package main

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// clockOffsetEnv names a testing aid: a Go duration (e.g. "72h", "-1h30m")
// added to the real time for every deadline cvd keeps (embargo dates,
// reminders, the delivery queue). It lets a test restart the server "three
// days later" without waiting. It is read once per process; production
// servers never set it.
const clockOffsetEnv = "CVD_CLOCK_OFFSET"

var clockOffset = sync.OnceValues(func() (time.Duration, error) {
	v := os.Getenv(clockOffsetEnv)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: not a Go duration (e.g. 72h or -90m): %v", clockOffsetEnv, v, err)
	}
	return d, nil
})

// now is cvd's clock: the real time plus CVD_CLOCK_OFFSET (a bad value,
// refused by checkClock at start, counts as none).
func now() time.Time {
	d, _ := clockOffset()
	return time.Now().Add(d)
}

// checkClock refuses a malformed CVD_CLOCK_OFFSET and warns when one is
// set, so a shifted clock is never silent.
func checkClock(log *slog.Logger) error {
	d, err := clockOffset()
	if err != nil {
		return err
	}
	if d != 0 {
		log.Warn("clock shifted for testing", "env", clockOffsetEnv, "offset", d.String(), "now", now().UTC().Format(time.RFC3339))
	}
	return nil
}
