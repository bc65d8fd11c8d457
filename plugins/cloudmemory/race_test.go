//go:build race

package cloudmemory

// raceEnabled is true when the tests run with -race, whose
// instrumentation allocates where a plain build does not.
const raceEnabled = true
