package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// defaultMemoryLimit is the Go runtime's soft memory limit when GOMEMLIMIT
// is not set: above it the garbage collector runs sooner than its usual
// doubling of the live heap, so a large message leaves less garbage
// resident. It is soft: a larger live heap is never refused.
const defaultMemoryLimit = 96 << 20

// setMemoryLimit applies defaultMemoryLimit unless GOMEMLIMIT is set (the
// runtime reads it itself; "off" means no limit).
func setMemoryLimit(log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		log.Debug("memory limit from GOMEMLIMIT", "limit", debug.SetMemoryLimit(-1))
		return
	}
	debug.SetMemoryLimit(defaultMemoryLimit)
}
