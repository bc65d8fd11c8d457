// Package clustertest runs a whole cloudrift system inside one test, in the
// spirit of net/http/httptest: every server of every group is a real
// cluster.Server listening on a loopback TCP port, the servers find each
// other through one embedded registry hub (registry/embedded), and game
// clients connect with the Go SDK (package client) over real WebSockets.
//
// A test starts a system from a system file's text, a file on disk or a
// config.System built in Go:
//
//	sys := clustertest.Start(t, yaml)      // every replica started and linked
//	c := sys.Server("lobby-1").Dial()      // an SDK client, closed at cleanup
//	sys.Server("world-2").Kill()           // abrupt close: peers see the link drop
//	sys.Server("world-2").Restart()        // same ID, new incarnation
//	sys.WaitLinked("lobby")                // every lobby server linked again
//
// New, NewSystem and Load prepare a system without starting any server, for
// tests that start servers one by one (StartServer, StartGroup, AddReplica,
// and StartServerWith for any cluster.Options), often with plugin values of
// their own. NewUnstarted makes a cluster.Server the test starts itself.
//
// Every wait is bounded by the system's patience (DefaultPatience unless
// WithPatience says otherwise). A wait that runs out fails the test with
// t.Fatalf, naming what it waited for; the bound catches hangs, and no test
// should rely on it to measure speed.
//
// Everything the kit starts (servers, registry connectors, SDK clients)
// ends in t.Cleanup, so a test that uses go.uber.org/goleak stays clean.
// The servers' logs are kept and printed when the test fails.
//
// The methods that take no TB use the one the system was made with; like
// every helper that calls t.Fatalf, they must be called from the test's own
// goroutine. They are safe for concurrent use otherwise: a wait's condition
// may read a Server from any goroutine.
package clustertest
