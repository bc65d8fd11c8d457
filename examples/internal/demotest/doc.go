// Package demotest is the test harness of the cloud-memory examples
// (examples/directory, examples/stats, examples/tasks): it runs an
// example's system file in-process on an embedded registry hub over
// loopback, dials game clients into it, waits for conditions with a bound (internal/testutil),
// and runs an example binary's dev and validate commands.
//
// Its helpers take a testing.TB and fail the test themselves (t.Fatal)
// rather than return errors, so they must be called from the test's
// goroutine. Everything they start is closed by t.Cleanup.
package demotest
