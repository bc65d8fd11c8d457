//go:build !race

package churntest

// raceEnabled is true when the tests run with -race.
const raceEnabled = false
