package cluster_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/consultest"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/registry/consul"
)

// startOnConsul starts server id of group in cfg, registered through its
// own connector to agent, hosting p, and stops both at cleanup.
func startOnConsul(t *testing.T, agent *consultest.Agent, cfg *config.System, logs *testutil.Buffer,
	group, id string, ttl time.Duration, p plugins.Plugin) *cluster.Server {
	t.Helper()
	log := zerolog.New(logs).With().Str("server", id).Logger()
	conn, err := consul.New(consul.Config{System: cfg.System, Address: agent.Addr(), TTL: ttl, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	srv, err := cluster.New(cluster.Options{System: cfg, Group: group, ID: id, Registry: conn,
		Listen: "127.0.0.1:0", Logger: &log, Plugins: []plugins.Plugin{p}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if err := srv.Start(testutil.Context(t)); err != nil {
		t.Fatal(err)
	}
	return srv
}

// A real Consul agent restart loses every registration (dev mode) and
// reports the groups empty until each server's heartbeat registers it
// again. Peers ride it out: no link closes, nobody leaves, and the
// replicas' peer lists do not change.
func TestConsulAgentRestartChangesNothing(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	const (
		ttl   = 9 * time.Second  // a heartbeat every 3s: the catalog stays empty up to that long
		grace = 10 * time.Second // links.leaveGrace, above that gap with room to spare
	)
	cfg := twoGroups()
	cfg.Links.LeaveGrace = config.Duration(grace)
	logs := &testutil.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs:\n%s", logs.String())
		}
	})
	a1, b1, b2 := newWitness(), newWitness(), newWitness()
	startOnConsul(t, agent, cfg, logs, "g2", "b1", ttl, b1)
	startOnConsul(t, agent, cfg, logs, "g2", "b2", ttl, b2)
	startOnConsul(t, agent, cfg, logs, "g1", "a1", ttl, a1)
	for _, id := range []string{"b1", "b2"} {
		testutil.WaitFor(t, "a1 connected to "+id, a1.connectedTo(id))
	}
	testutil.WaitFor(t, "b1 and b2 see each other", func() bool {
		h1, h2 := b1.peerHistory(), b2.peerHistory()
		return len(h1) > 0 && h1[len(h1)-1] == "b1,b2" && len(h2) > 0 && h2[len(h2)-1] == "b1,b2"
	})
	peersBefore := [][]string{b1.peerHistory(), b2.peerHistory()}

	agent.Restart()
	client, err := agent.API()
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "every server registered again", func() bool {
		n := 0
		for _, svc := range []string{"cloudrift-test-g1", "cloudrift-test-g2"} {
			entries, _, err := client.Health().Service(svc, "", true, nil)
			if err == nil {
				n += len(entries)
			}
		}
		return n == 3
	})
	// Any absence the restart showed ends within the grace: hold past it.
	time.Sleep(grace + time.Second)

	if !strings.Contains(logs.String(), "the registry stopped listing servers") {
		t.Log("no watch saw the restarted agent's empty catalog this time")
	}
	for _, id := range []string{"b1", "b2"} {
		wantEvents(t, "a1", a1, id, "joined", "connected")
	}
	wantEvents(t, "b1", b1, "a1", "joined", "connected")
	wantEvents(t, "b2", b2, "a1", "joined", "connected")
	if got := [][]string{b1.peerHistory(), b2.peerHistory()}; !slices.EqualFunc(got, peersBefore, slices.Equal) {
		t.Fatalf("peer lists through the agent restart = %v, want unchanged %v", got, peersBefore)
	}
}
