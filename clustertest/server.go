package clustertest

import (
	"context"
	"errors"
	"sync"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/registry/embedded"
)

// Server is one server of a System under one ID. It outlives the
// cluster.Server it runs: after Kill or Shutdown, Restart runs a new one
// (a new incarnation) under the same ID.
type Server struct {
	sys   *System
	id    string
	group string

	mu      sync.Mutex          // guards the fields below
	opts    cluster.Options     // what each incarnation starts with
	srv     *cluster.Server     // the current incarnation
	conn    *embedded.Connector // its registry connector
	running bool
}

// ID returns the server's ID.
func (s *Server) ID() string { return s.id }

// Group returns the name of the server's group.
func (s *Server) Group() string { return s.group }

// Cluster returns the cluster.Server of the current incarnation (the last
// one, once the server is stopped).
func (s *Server) Cluster() *cluster.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// Host returns the plugin API of the current incarnation, as its plugins
// see it.
func (s *Server) Host() plugins.Host { return s.Cluster().Host() }

// Incarnation returns the incarnation of the current cluster.Server.
func (s *Server) Incarnation() uint64 { return s.Cluster().Incarnation() }

// Running reports whether the server has been started and not killed or
// shut down since.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// Addr returns the host:port the current incarnation listens on (listened
// on, once stopped), on loopback. A restarted server listens on a new port.
func (s *Server) Addr() string {
	s.sys.t.Helper()
	a := s.Cluster().Addr()
	if a == nil {
		s.sys.t.Fatalf("clustertest: server %s is not listening", s.id)
	}
	return a.String()
}

// URL returns the WebSocket endpoint game clients dial on this server,
// ws://host:port/path, and fails the test if its group is not external.
func (s *Server) URL() string {
	s.sys.t.Helper()
	g := s.sys.group(s.group)
	if g.Visibility != config.External {
		s.sys.t.Fatalf("clustertest: server %s is in internal group %s, which takes no game clients", s.id, s.group)
	}
	return g.ClientURL(s.Addr())
}

// Dial connects an SDK client to this server, as DialWith does with zero
// options.
func (s *Server) Dial() *client.Client {
	s.sys.t.Helper()
	return s.DialWith(client.Options{})
}

// DialWith connects an SDK client to this server with opts (whose URL it
// sets to URL()), within the system's patience, and fails the test if the
// server does not welcome it. The client is closed when the test ends.
func (s *Server) DialWith(opts client.Options) *client.Client {
	s.sys.t.Helper()
	opts.URL = s.URL()
	ctx, cancel := context.WithTimeout(context.Background(), s.sys.opts.patience)
	defer cancel()
	c, err := client.Dial(ctx, opts)
	if err != nil {
		s.sys.t.Fatalf("clustertest: dial %s: %v", s.id, err)
	}
	s.sys.t.Cleanup(func() { c.Close() })
	return c
}

// Kill closes the server at once (cluster.Server.Close): its links and
// game clients drop without a word, as when a process dies, and it leaves
// the registry. Killing a server that is not running fails the test.
func (s *Server) Kill() {
	s.sys.t.Helper()
	if !s.stop() {
		s.sys.t.Fatalf("clustertest: kill %s: not running", s.id)
	}
}

// Shutdown stops the server gracefully (cluster.Server.Shutdown: it tells
// its peers and clients it leaves and lets its plugins finish), within the
// system's patience, and fails the test if it does not.
func (s *Server) Shutdown() {
	s.sys.t.Helper()
	s.mu.Lock()
	srv, conn, was := s.srv, s.conn, s.running
	s.running = false
	s.mu.Unlock()
	if !was {
		s.sys.t.Fatalf("clustertest: shut down %s: not running", s.id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.sys.opts.patience)
	defer cancel()
	err := srv.Shutdown(ctx)
	conn.Close()
	if err != nil {
		s.sys.t.Fatalf("clustertest: shut down %s: %v", s.id, err)
	}
}

// Restart starts a new incarnation of a killed or shut-down server under
// the same ID, on a new loopback port. ps, when given, are the plugin
// values it hosts from now on; otherwise it hosts those it was started
// with (the same values, which must then take a second Start, or the
// group's plugins provisioned anew), and the other options it was started
// with, but for a Listener: it listens anew. It returns once the server is
// registered, and fails the test if the server is running or does not
// start.
func (s *Server) Restart(ps ...plugins.Plugin) {
	s.sys.t.Helper()
	s.mu.Lock()
	was := s.running
	if ps != nil {
		s.opts.Plugins = ps
	}
	s.mu.Unlock()
	if was {
		s.sys.t.Fatalf("clustertest: restart %s: still running; Kill or Shutdown it first", s.id)
	}
	s.start()
}

// start runs a new cluster.Server under s's ID.
func (s *Server) start() {
	t := s.sys.t
	t.Helper()
	s.mu.Lock()
	opts := s.opts
	s.opts.Listener = nil // it serves the first incarnation only
	s.mu.Unlock()
	srv, conn := s.sys.newCluster(opts)
	ctx, cancel := context.WithTimeout(context.Background(), s.sys.opts.patience)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		conn.Close()
		t.Fatalf("clustertest: start %s: %v", s.id, err)
	}
	s.mu.Lock()
	s.srv, s.conn, s.running = srv, conn, true
	s.mu.Unlock()
}

// stop closes the running server and its connector; it reports whether
// the server was running.
func (s *Server) stop() bool {
	s.mu.Lock()
	srv, conn, was := s.srv, s.conn, s.running
	s.running = false
	s.mu.Unlock()
	if !was {
		return false
	}
	if err := srv.Close(); err != nil && !errors.Is(err, cluster.ErrServerClosed) {
		s.sys.t.Errorf("clustertest: close %s: %v", s.id, err)
	}
	conn.Close()
	return true
}
