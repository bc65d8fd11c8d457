package clustertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/groups"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/registry/embedded"
)

// TB is the part of testing.TB the kit uses. *testing.T, *testing.B and
// *testing.F satisfy it. Fatalf must not return (testing's calls
// runtime.Goexit).
type TB interface {
	Helper()
	Cleanup(func())
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Failed() bool
}

// DefaultPatience bounds every wait of a system made without WithPatience.
// It is generous so that a loaded machine running tests with -race does
// not fail them; it only turns a hang into a failure.
const DefaultPatience = testutil.Patience

// Fast reconnects: the kit lowers the links' backoff to at most these, so
// a killed or restarted server is redialled within a fraction of a second.
const (
	fastBackoffMin = config.Duration(10 * time.Millisecond)
	fastBackoffMax = config.Duration(100 * time.Millisecond)
)

// Option changes how a System runs. The zero set of options is the
// documented default of each.
type Option func(*options)

type options struct {
	patience time.Duration
	level    zerolog.Level
	plugins  map[string][]plugins.Plugin
}

// WithPatience bounds every wait of the system by d instead of
// DefaultPatience. Zero or negative keeps the default.
func WithPatience(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.patience = d
		}
	}
}

// WithLogLevel keeps the servers' logs from level up. Default: info.
func WithLogLevel(level zerolog.Level) Option {
	return func(o *options) { o.level = level }
}

// WithPlugins gives the server id these plugin values, instead of the
// plugins its group's settings provision, whenever the kit starts it by
// itself (Start, StartAll, StartGroup, AddReplica). The values are hosted
// again by Restart unless it is given others.
func WithPlugins(id string, ps ...plugins.Plugin) Option {
	return func(o *options) { o.plugins[id] = ps }
}

// System is a system running in the test: its servers, the embedded
// registry hub they share, and the logs they write. Make one with Start,
// StartSystem, New, NewSystem or Load.
type System struct {
	t    TB
	cfg  *config.System
	topo *groups.Topology
	hub  *embedded.Hub
	opts options
	logs testutil.Buffer

	mu      sync.Mutex
	servers []*Server // in start order
	byID    map[string]*Server
}

// Start parses yaml as a system file (no ${VAR} is set: each takes its
// default), and starts every replica of every group as StartAll does. It
// fails t if the text is not a valid system or a server does not start.
func Start(t TB, yaml string, opts ...Option) *System {
	t.Helper()
	s := New(t, yaml, opts...)
	s.StartAll()
	return s
}

// StartSystem starts sys as StartAll does; the caller's sys is not
// modified.
func StartSystem(t TB, sys *config.System, opts ...Option) *System {
	t.Helper()
	s := NewSystem(t, sys, opts...)
	s.StartAll()
	return s
}

// New parses yaml as Start does, and starts no server.
func New(t TB, yaml string, opts ...Option) *System {
	t.Helper()
	sys, err := config.Parse("cluster.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatalf("clustertest: %v", err)
	}
	return NewSystem(t, sys, opts...)
}

// Load loads the system file at path as config.Load does (${VAR} from the
// environment), and starts no server.
func Load(t TB, path string, opts ...Option) *System {
	t.Helper()
	sys, err := config.Load(path)
	if err != nil {
		t.Fatalf("clustertest: %v", err)
	}
	return NewSystem(t, sys, opts...)
}

// NewSystem validates a copy of sys (applying its defaults), and starts no
// server. The copy's links back off for at most 100ms between redials (see
// Config).
func NewSystem(t TB, sys *config.System, opts ...Option) *System {
	t.Helper()
	o := options{patience: DefaultPatience, level: zerolog.InfoLevel, plugins: map[string][]plugins.Plugin{}}
	for _, opt := range opts {
		opt(&o)
	}
	cfg := *sys
	cfg.Groups = slices.Clone(sys.Groups)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("clustertest: %v", err)
	}
	cfg.Links.BackoffMin = min(cfg.Links.BackoffMin, fastBackoffMin)
	cfg.Links.BackoffMax = min(cfg.Links.BackoffMax, fastBackoffMax)
	s := &System{t: t, cfg: &cfg, topo: groups.New(&cfg), hub: embedded.NewHub(), opts: o, byID: map[string]*Server{}}
	t.Cleanup(func() {
		s.closeAll()
		if t.Failed() {
			t.Logf("clustertest: server logs:\n%s", s.logs.String())
		}
	})
	return s
}

// Config returns the system the servers run: the one given, with defaults
// applied and the links' BackoffMin and BackoffMax lowered to at most 10ms
// and 100ms. Change it only before the first server starts; servers share
// it.
func (s *System) Config() *config.System { return s.cfg }

// Hub returns the registry hub every server registers in, for fault
// injection (Expire, Pause, Resume; Blackout, Flap and Hide, which make
// watchers miss members that stay registered) and for reading its members.
func (s *System) Hub() *embedded.Hub { return s.hub }

// Patience returns the bound of every wait of the system.
func (s *System) Patience() time.Duration { return s.opts.patience }

// Logs returns what the servers have logged so far.
func (s *System) Logs() string { return s.logs.String() }

// Context returns a context that ends after the system's patience or when
// the test ends, whichever comes first.
func (s *System) Context() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.patience)
	s.t.Cleanup(cancel)
	return ctx
}

// StartAll starts every replica of every group, upstream groups first as
// dev mode does, with IDs <group>-1 to <group>-N (N the group's replicas),
// then waits until every group is linked (WaitLinked).
func (s *System) StartAll() {
	s.t.Helper()
	order := s.topo.Order()
	for _, g := range order {
		s.StartGroup(g)
	}
	for _, g := range order {
		s.WaitLinked(g)
	}
}

// StartGroup starts every replica the system gives group, with IDs
// <group>-1 to <group>-N, without waiting for links.
func (s *System) StartGroup(group string) {
	s.t.Helper()
	g := s.group(group)
	for i := 1; i <= max(g.Replicas, 1); i++ {
		id := fmt.Sprintf("%s-%d", group, i)
		s.StartServer(group, id, s.opts.plugins[id]...)
	}
}

// AddReplica starts one more server of group, with the first free ID
// <group>-N, and returns it without waiting for links.
func (s *System) AddReplica(group string, ps ...plugins.Plugin) *Server {
	s.t.Helper()
	s.group(group)
	for i := 1; ; i++ {
		id := fmt.Sprintf("%s-%d", group, i)
		s.mu.Lock()
		_, taken := s.byID[id]
		s.mu.Unlock()
		if !taken {
			if ps == nil {
				ps = s.opts.plugins[id]
			}
			return s.StartServer(group, id, ps...)
		}
	}
}

// StartServer starts the server id of group on a loopback port, with its
// own connector to the hub, and returns once it is registered (its links
// come up in the background). ps, when given, are the plugin values it
// hosts instead of the plugins its group's settings provision. It fails
// the test if the ID is taken or the server does not start.
func (s *System) StartServer(group, id string, ps ...plugins.Plugin) *Server {
	s.t.Helper()
	return s.StartServerWith(cluster.Options{Group: group, ID: id, Plugins: ps})
}

// StartServerWith starts a server as StartServer does, with opts as given
// but for what the kit fills in: Registry (a new connector to the hub),
// System when nil (the system's Config, or another system sharing the hub,
// as a misconfigured server would), Logger when nil (into the system's
// logs), and Listen when neither Listen nor Listener is set (loopback, a
// free port). opts.Group and opts.ID are required.
func (s *System) StartServerWith(opts cluster.Options) *Server {
	s.t.Helper()
	if opts.System == nil {
		s.group(opts.Group)
	}
	if opts.ID == "" {
		s.t.Fatalf("clustertest: a server of %s needs an ID", opts.Group)
	}
	srv := &Server{sys: s, id: opts.ID, group: opts.Group, opts: opts}
	s.mu.Lock()
	if _, dup := s.byID[opts.ID]; dup {
		s.mu.Unlock()
		s.t.Fatalf("clustertest: server %s started twice", opts.ID)
	}
	s.byID[opts.ID] = srv
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	srv.start()
	return srv
}

// NewUnstarted makes a cluster.Server with opts completed as
// StartServerWith completes them, and does not start it, for tests of
// Start itself (a Shutdown or Close racing it, a plugin whose Start
// fails). The kit does not track it: Server, Servers and the waits do not
// see it. It fails the test if cluster.New does; the server and its
// registry connector are closed when the test ends.
func (s *System) NewUnstarted(opts cluster.Options) *cluster.Server {
	s.t.Helper()
	if opts.System == nil {
		s.group(opts.Group)
	}
	srv, conn := s.newCluster(opts)
	s.t.Cleanup(func() {
		if err := srv.Close(); err != nil && !errors.Is(err, cluster.ErrServerClosed) {
			s.t.Errorf("clustertest: close %s: %v", opts.ID, err)
		}
		conn.Close()
	})
	return srv
}

// newCluster makes a cluster.Server from opts with what the kit fills in
// (see StartServerWith), and the new registry connector it registers
// with. It fails the test, having closed what it opened, if cluster.New
// does.
func (s *System) newCluster(opts cluster.Options) (*cluster.Server, *embedded.Connector) {
	s.t.Helper()
	conn := s.hub.Connector()
	opts.Registry = conn
	if opts.System == nil {
		opts.System = s.cfg
	}
	if opts.Logger == nil {
		opts.Logger = s.logger()
	}
	if opts.Listen == "" && opts.Listener == nil {
		opts.Listen = "127.0.0.1:0"
	}
	srv, err := cluster.New(opts)
	if err != nil {
		conn.Close()
		if opts.Listener != nil {
			opts.Listener.Close()
		}
		s.t.Fatalf("clustertest: new server %s: %v", opts.ID, err)
	}
	return srv, conn
}

// Server returns the server id, and fails the test if no server of that ID
// was started.
func (s *System) Server(id string) *Server {
	s.t.Helper()
	s.mu.Lock()
	srv, ok := s.byID[id]
	s.mu.Unlock()
	if !ok {
		s.t.Fatalf("clustertest: no server %s was started", id)
	}
	return srv
}

// Servers returns the servers of group in the order they were first
// started, running or not. The slice is the caller's.
func (s *System) Servers(group string) []*Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Server
	for _, srv := range s.servers {
		if srv.group == group {
			out = append(out, srv)
		}
	}
	return out
}

// Replica returns the i-th server of group in start order (0 the first),
// and fails the test if there is none.
func (s *System) Replica(group string, i int) *Server {
	s.t.Helper()
	ss := s.Servers(group)
	if i < 0 || i >= len(ss) {
		s.t.Fatalf("clustertest: group %s has %d servers, no replica %d", group, len(ss), i)
	}
	return ss[i]
}

// group returns the group named name, and fails the test if there is none.
func (s *System) group(name string) *config.Group {
	s.t.Helper()
	g, ok := s.cfg.Group(name)
	if !ok {
		s.t.Fatalf("clustertest: system %q has no group %q", s.cfg.System, name)
	}
	return g
}

// logger returns a logger into the system's logs; each server adds its ID.
func (s *System) logger() *zerolog.Logger {
	l := zerolog.New(&s.logs).With().Timestamp().Logger().Level(s.opts.level)
	return &l
}

// closeAll closes every running server, the last started first.
func (s *System) closeAll() {
	s.mu.Lock()
	ss := slices.Clone(s.servers)
	s.mu.Unlock()
	slices.Reverse(ss)
	for _, srv := range ss {
		srv.stop()
	}
}
