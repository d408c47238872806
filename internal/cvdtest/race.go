//go:build race

package cvdtest

// Race is true when the tests run with the race detector; Main then builds
// cvd with it too.
const Race = true
