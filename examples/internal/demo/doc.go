// Package demo holds what the binaries of the cloud-memory examples
// (examples/directory, examples/stats, examples/tasks) share: a dev hook
// that runs an example's Simulation on the client servers that run the
// example's guard plugin, the plumbing of those simulations (the Scenario
// each plays: bots that can be told to crash, reconnecting, and an observer
// reported every interval; bounded dials), and the flags and watch loop of
// the examples' own commands.
//
// Each example keeps its own logic in its package; this package knows
// nothing of directories, statistics or tasks. It is internal to the
// examples: its API changes with them.
package demo
