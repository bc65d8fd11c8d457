package demotest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/registry/embedded"
)

// System is an example's system file run in-process for one test, every
// server on an embedded registry hub and over loopback. The servers' logs
// (info level and above) are kept, and printed when the test fails. Make
// one with Load, then Start its servers.
type System struct {
	// Config is the loaded system file, with the links' reconnect backoff
	// shortened to 10ms..100ms so that links come up fast. Change it only
	// before the first Start; servers share it.
	Config *config.System

	t       testing.TB
	hub     *embedded.Hub
	logs    testutil.Buffer
	servers map[string]*cluster.Server
}

// Load loads the system file at path (config.Load: environment expanded,
// then validated) and fails t if it does not load. No server starts yet.
func Load(t testing.TB, path string) *System {
	t.Helper()
	sys, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sys.Links.BackoffMin = config.Duration(10 * time.Millisecond)
	sys.Links.BackoffMax = config.Duration(100 * time.Millisecond)
	s := &System{Config: sys, t: t, hub: embedded.NewHub(), servers: make(map[string]*cluster.Server)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs:\n%s", s.logs.String())
		}
	})
	return s
}

// Start starts the server id of group, with its own registry connector,
// and fails t if it does not start. ps, when given, are the plugin values
// the server hosts instead of provisioning the group's plugins from the
// file (cluster.Options.Plugins). The server is closed, then its connector,
// when the test ends.
func (s *System) Start(group, id string, ps ...plugins.Plugin) *cluster.Server {
	s.t.Helper()
	if _, dup := s.servers[id]; dup {
		s.t.Fatalf("server %s started twice", id)
	}
	conn := s.hub.Connector()
	log := zerolog.New(&s.logs).With().Str("server", id).Logger().Level(zerolog.InfoLevel)
	srv, err := cluster.New(cluster.Options{System: s.Config, Group: group, ID: id, Registry: conn, Logger: &log, Plugins: ps})
	if err != nil {
		conn.Close()
		s.t.Fatalf("New %s: %v", id, err)
	}
	s.t.Cleanup(func() {
		srv.Close()
		conn.Close()
	})
	if err := srv.Start(context.Background()); err != nil {
		s.t.Fatalf("Start %s: %v", id, err)
	}
	s.servers[id] = srv
	return srv
}

// StartGroup starts every replica the file gives group, with IDs group-1
// to group-N, and fails t if the file has no such group.
func (s *System) StartGroup(group string) {
	s.t.Helper()
	g, ok := s.Config.Group(group)
	if !ok {
		s.t.Fatalf("%s has no group %q", s.Config.File, group)
	}
	for i := 1; i <= g.Replicas; i++ {
		s.Start(group, fmt.Sprintf("%s-%d", group, i))
	}
}

// Server returns the server id, and fails t if it was not started.
func (s *System) Server(id string) *cluster.Server {
	s.t.Helper()
	srv, ok := s.servers[id]
	if !ok {
		s.t.Fatalf("no server %s started", id)
	}
	return srv
}

// URL returns the WebSocket URL of the client server id.
func (s *System) URL(id string) string {
	s.t.Helper()
	return "ws://" + s.Server(id).Addr().String() + "/"
}

// WaitLinked waits, as testutil.WaitFor does, until each of the servers ids has
// exactly n links up (to the replicas of the groups it connects to).
func (s *System) WaitLinked(n int, ids ...string) {
	s.t.Helper()
	for _, id := range ids {
		srv := s.Server(id)
		testutil.WaitFor(s.t, fmt.Sprintf("%s linked to %d servers", id, n), func() bool { return srv.Stats().LinksUp == n })
	}
}

// Dial connects a game client to the client server id, as DialWith does
// with zero options.
func (s *System) Dial(id string) *client.Client {
	s.t.Helper()
	return s.DialWith(id, client.Options{})
}

// DialWith connects a game client to the client server id with opts
// (whose URL it replaces), within a testutil.Context, and fails t if it cannot. The
// client is closed when the test ends.
func (s *System) DialWith(id string, opts client.Options) *client.Client {
	s.t.Helper()
	opts.URL = s.URL(id)
	c, err := client.Dial(testutil.Context(s.t), opts)
	if err != nil {
		s.t.Fatalf("dial %s: %v", id, err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Shutdown stops the server id gracefully (cluster.Server.Shutdown, which
// lets its plugins finish), within testutil.Patience, and fails t if it
// does not.
func (s *System) Shutdown(id string) {
	s.t.Helper()
	if err := s.Server(id).Shutdown(testutil.Context(s.t)); err != nil {
		s.t.Fatalf("Shutdown %s: %v", id, err)
	}
}

// Settings decodes the settings the file gives the plugin named plugin in
// group into v (a non-nil pointer), strictly, as the plugin does; it fails
// t if the group does not run the plugin or the settings do not decode.
func (s *System) Settings(group, plugin string, v any) {
	s.t.Helper()
	g, ok := s.Config.Group(group)
	if !ok {
		s.t.Fatalf("%s has no group %q", s.Config.File, group)
	}
	i := slices.IndexFunc(g.Plugins, func(p config.Plugin) bool { return p.Name == plugin })
	if i < 0 {
		s.t.Fatalf("group %s runs no plugin %s", group, plugin)
	}
	if err := plugins.DecodeStrict(&g.Plugins[i].Settings, v); err != nil {
		s.t.Fatal(err)
	}
}
