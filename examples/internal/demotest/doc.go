// Package demotest is the test harness of the cloud-memory examples
// (examples/directory, examples/stats, examples/tasks): it loads an
// example's system file into a clustertest.System (servers in-process on an
// embedded registry hub over loopback, SDK clients, bounded waits), decodes
// a plugin's settings from that file, and runs an example binary's dev and
// validate commands.
//
// Its helpers take a testing.TB and fail the test themselves (t.Fatal)
// rather than return errors, so they must be called from the test's
// goroutine. Everything they start is closed by t.Cleanup.
package demotest
