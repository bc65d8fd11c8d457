package cluster_test

import (
	"testing"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/config"
)

// The systems the tests run are defined in testsystems_test.go, for the
// package cluster tests too.
const testSecret = cluster.TestSecret

var (
	twoGroups    = cluster.TwoGroups
	clientSystem = cluster.ClientSystem
)

// newSystem prepares sys in the test kit, and starts no server. It keeps
// every log line: some tests look for debug ones.
func newSystem(tb testing.TB, sys *config.System) *clustertest.System {
	tb.Helper()
	return clustertest.NewSystem(tb, sys, clustertest.WithLogLevel(zerolog.TraceLevel))
}
