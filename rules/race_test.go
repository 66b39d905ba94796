//go:build race

package rules

// raceEnabled: under the race detector sync.Pool drops items at random, so
// regexp allocates and allocation counts mean nothing.
const raceEnabled = true
