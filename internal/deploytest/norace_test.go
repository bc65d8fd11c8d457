//go:build !race

package deploytest

// raceEnabled is true when the tests run with -race.
const raceEnabled = false
