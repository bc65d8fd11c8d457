// This file is in package cluster so that the tests of both packages,
// cluster and cluster_test, run the same systems: the latter reach them
// through the exported names at the end.

package cluster

import (
	"time"

	"github.com/cloudrift/cloudrift/config"
)

const testSecret = "test-secret-of-sufficient-length"

// twoGroups is G1 (external) connecting to G2 (internal), plus an unrelated
// internal group G3 that connects to nothing.
func twoGroups() *config.System {
	sys := &config.System{
		System: "test",
		Secret: testSecret,
		Groups: []config.Group{
			{Name: "g1", Visibility: config.External, ConnectsTo: []string{"g2"}},
			{Name: "g2", Visibility: config.Internal},
			{Name: "g3", Visibility: config.Internal},
		},
		Links: config.Links{
			Heartbeat:        config.Duration(100 * time.Millisecond),
			Timeout:          config.Duration(500 * time.Millisecond),
			HandshakeTimeout: config.Duration(500 * time.Millisecond),
			BackoffMin:       config.Duration(10 * time.Millisecond),
			BackoffMax:       config.Duration(50 * time.Millisecond),
			LeaveGrace:       config.Duration(200 * time.Millisecond),
			MaxFrame:         64 << 10,
		},
	}
	if err := sys.Validate(); err != nil {
		panic(err)
	}
	return sys
}

// clientSystem is twoGroups with cl as G1's client settings.
func clientSystem(cl config.Clients) *config.System {
	sys := twoGroups()
	sys.Groups[0].Clients = cl
	if err := sys.Validate(); err != nil {
		panic(err)
	}
	return sys
}

// TestSecret, TwoGroups and ClientSystem are testSecret, twoGroups and
// clientSystem for package cluster_test.
const TestSecret = testSecret

var (
	TwoGroups    = twoGroups
	ClientSystem = clientSystem
)
