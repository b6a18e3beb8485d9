//go:build race

package embedded_test

// raceEnabled is true when the tests run with the race detector, which
// slows the long cases of watermill's suite too much to run in full.
const raceEnabled = true
