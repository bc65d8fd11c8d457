// Package cluster is the server runtime: one Server runs one group's role in
// a system. It listens for the servers of downstream groups, dials every
// server of every upstream group it learns of from the registry,
// authenticates each link with the system secret, keeps links alive with
// heartbeats, and hosts the group's plugins.
//
// Lock order: remote.evMu before Server.mu before link.mu. Methods named
// *Locked expect the lock they name to be held.
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/groups"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/registry"
)

// Errors of the runtime. Plugin-facing errors live in package plugins.
var (
	// ErrServerClosed is returned by Start, Shutdown and Close once the
	// server has been shut down or closed.
	ErrServerClosed = errors.New("cluster: server closed")
	// ErrBadOptions wraps every problem New finds in its Options.
	ErrBadOptions = errors.New("cluster: bad options")
	// ErrRefused is wrapped by dial errors when the acceptor refused the
	// handshake; errors.As finds the *plugins.CloseError with the reason.
	ErrRefused = errors.New("cluster: link refused")
	// ErrHandshake is wrapped by handshake failures other than refusals.
	ErrHandshake = errors.New("cluster: handshake failed")
)

// Options configure a Server. The zero value of each optional field is a
// documented default.
type Options struct {
	// System is the system (config.Load's, or one built in Go code). New
	// applies its defaults and checks it as config.Load would, on a copy:
	// the caller's System is not modified. Required.
	System *config.System
	// Group is the name of this server's group in System. Required.
	Group string
	// ID names this server in the system. Zero: "<group>-<8 random hex>".
	ID string
	// Listener, when set, is used instead of listening on Listen; the
	// server closes it on shutdown.
	Listener net.Listener
	// Listen overrides the group's listen address. Zero: the group's.
	Listen string
	// Advertise is the address peers dial, registered in the registry.
	// Zero: the listener's address, which must then have a specific host
	// (a server listening on all interfaces must be told what to advertise).
	Advertise string
	// Registry discovers the other servers. Required. The server registers
	// and deregisters itself but does not Close the connector: its owner
	// does.
	Registry registry.Connector
	// Logger receives structured logs. Nil: logs are discarded.
	Logger *zerolog.Logger
	// Plugins, when non-nil, are the plugin values to host instead of
	// provisioning the group's plugins from the system file.
	Plugins []plugins.Plugin
	// Meta is extra registry metadata for this server.
	Meta map[string]string
}

type serverState int32

const (
	stateNew      serverState = iota
	stateStarting             // Start is running; Shutdown and Close wait for it
	stateRunning
	stateDraining // Shutdown is running
	stateClosed
)

// Server runs one server of a group. Create it with New, then Start; end it
// with Shutdown (graceful) or Close (immediate). All methods are safe for
// concurrent use.
type Server struct {
	sys         *config.System
	group       *config.Group
	topo        *groups.Topology
	id          string
	incarnation uint64
	secret      []byte
	links       config.Links
	reg         registry.Connector
	log         zerolog.Logger
	opts        Options
	hooks       *hookSet

	ctx       context.Context // cancelled on shutdown: ends watchers and dialers
	cancel    context.CancelFunc
	goroutine tracker       // every goroutine the server starts
	startDone chan struct{} // closed when Start has returned

	state atomic.Int32 // serverState

	clients   *clientHub  // external groups only; nil otherwise
	dir       *directory  // external groups only; nil otherwise
	draining  atomic.Bool // Drain began (drain.go)
	linkTLS   *linkTLS    // links.tls; nil for plain links
	clientTLS *tls.Config // clients.tls; nil for plain ws://
	// advertised is the address registered for this server; Start sets
	// it before it starts the goroutines that read it.
	advertised string
	// sockDir is the directory of this host's link sockets; "" when links
	// stay on TCP (localsock.go). Start sets it before anything dials.
	sockDir string

	mu          sync.Mutex // guards the fields below
	ln          net.Listener
	localLn     net.Listener            // the link socket in sockDir; nil without one
	related     map[string]*remoteGroup // upstream and downstream groups by name
	linkSet     map[*link]struct{}      // links past the handshake
	handshaking map[net.Conn]struct{}   // accepted or dialled, not yet linked
	closedIn    uint64                  // messages of links that are gone
	closedOut   uint64
	registered  bool
	self        registry.Member // as registered; Drain updates its Meta
	stopped     chan struct{}   // closed when Shutdown or Close finished

	refused    atomic.Uint64
	hookErrors atomic.Uint64
	hookPanics atomic.Uint64

	refusedBy      reasonCounts // refusals by reason
	linkCloses     reasonCounts // links down by reason
	clientCloses   reasonCounts // client sessions ended by reason
	registryErrors atomic.Uint64
	cloudMeter     cloudMeter // operations of plugins and the embedder
	// clientCloudMeter counts the cloud operations of game clients, as
	// the cloud memory reports them (extension.Host.RecordClientCloudOp).
	clientCloudMeter cloudMeter
	flow             flowControl // link backpressure (backpressure.go)
}

// New checks opts and provisions the group's plugins. It does not touch the
// network.
func New(opts Options) (*Server, error) {
	if opts.System == nil {
		return nil, fmt.Errorf("%w: no System", ErrBadOptions)
	}
	if opts.Registry == nil {
		return nil, fmt.Errorf("%w: no Registry", ErrBadOptions)
	}
	// A System built in Go code gets the defaults and the checks of a
	// system file; the caller's System is left as it is.
	sys := *opts.System
	sys.Groups = slices.Clone(sys.Groups)
	if err := sys.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	g, ok := sys.Group(opts.Group)
	if !ok {
		return nil, fmt.Errorf("%w: group %q is not in system %q", ErrBadOptions, opts.Group, sys.System)
	}
	if sys.Secret == "" {
		return nil, fmt.Errorf("%w: system %q has no secret", ErrBadOptions, sys.System)
	}
	s := &Server{
		sys:         &sys,
		group:       g,
		topo:        groups.New(&sys),
		id:          opts.ID,
		secret:      []byte(sys.Secret),
		links:       sys.Links,
		reg:         opts.Registry,
		opts:        opts,
		related:     make(map[string]*remoteGroup),
		linkSet:     make(map[*link]struct{}),
		handshaking: make(map[net.Conn]struct{}),
		stopped:     make(chan struct{}),
		startDone:   make(chan struct{}),
	}
	s.flow.init(&s.log)
	// Made here, not in Start, so that Shutdown and Close racing Start
	// always find them.
	s.ctx, s.cancel = context.WithCancel(context.Background())
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("cluster: incarnation: %w", err)
	}
	s.incarnation = binary.BigEndian.Uint64(rnd[:8]) | 1 // never 0
	if s.id == "" {
		s.id = g.Name + "-" + hex.EncodeToString(rnd[8:])
	}
	log := zerolog.Nop()
	if opts.Logger != nil {
		log = *opts.Logger
	}
	s.log = log.With().Str("system", s.sys.System).Str("group", g.Name).Str("server", s.id).Logger()

	for _, name := range s.topo.Upstream(g.Name) {
		s.related[name] = newRemoteGroup(s, name, plugins.Upstream)
	}
	for _, name := range s.topo.Downstream(g.Name) {
		s.related[name] = newRemoteGroup(s, name, plugins.Downstream)
	}

	if err := s.loadTLS(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	ps, names, err := s.provision()
	if err != nil {
		return nil, err
	}
	if s.hooks, err = newHookSet(s, ps, names); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	return s, nil
}

// ID returns the server's ID.
func (s *Server) ID() string { return s.id }

// Incarnation returns the random number that tells this process start apart
// from earlier ones with the same ID.
func (s *Server) Incarnation() uint64 { return s.incarnation }

// GroupName returns the name of the server's group.
func (s *Server) GroupName() string { return s.group.Name }

// Addr returns the listener's address, or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Done is closed when the server has finished shutting down or closing.
func (s *Server) Done() <-chan struct{} { return s.stopped }

// Start opens the listener, starts the plugins, registers in the registry
// and starts watching the related groups. It returns once the server is
// registered, waiting up to the system's registry.startTimeout for a
// registry that is not reachable yet (see register); links come up in the
// background. On error everything started
// is undone. Shutdown and Close called meanwhile wait for it to return.
func (s *Server) Start(ctx context.Context) (err error) {
	if !s.state.CompareAndSwap(int32(stateNew), int32(stateStarting)) {
		return ErrServerClosed
	}
	defer func() {
		s.state.Store(int32(stateRunning))
		close(s.startDone)
		if err != nil {
			s.Close()
		}
	}()
	ln := s.opts.Listener
	if ln == nil {
		addr := s.opts.Listen
		if addr == "" {
			addr = s.group.Listen
		}
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("cluster: listen: %w", err)
		}
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	advertise, err := s.advertise(ln.Addr())
	if err != nil {
		return err
	}
	s.advertised = advertise
	if err := s.hooks.start(ctx); err != nil {
		return err
	}
	s.log.Info().Str("listen", ln.Addr().String()).Str("advertise", advertise).
		Strs("upstream", s.topo.Upstream(s.group.Name)).Strs("downstream", s.topo.Downstream(s.group.Name)).
		Msg("server starting")

	s.sockDir = s.socketDir()
	if s.group.Visibility != config.External {
		s.goTracked(func() { s.acceptLoop(ln) })
		if s.sockDir != "" {
			s.listenLinkSocket()
		}
	}
	if s.group.Visibility == config.External {
		s.clients = newClientHub(s)
		s.dir = newDirectory(s)
		s.goTracked(func() { s.clients.serve(ln) })
	}
	s.goTracked(s.heartbeatLoop)

	meta := map[string]string{"protocol": fmt.Sprint(protocol.Version)}
	for k, v := range s.opts.Meta {
		meta[k] = v
	}
	if u := s.group.ClientURL(advertise); u != "" {
		meta[MetaClientURL] = u
	}
	self := registry.Member{ID: s.id, Group: s.group.Name, Address: advertise, Incarnation: s.incarnation, Meta: meta}
	if err := s.register(ctx, self); err != nil {
		return err
	}
	s.mu.Lock()
	s.registered = true
	s.self = self
	s.mu.Unlock()
	for _, g := range s.sortedRelated() {
		ch, err := s.reg.Watch(s.ctx, g.name)
		if err != nil {
			s.registryErrors.Add(1)
			return fmt.Errorf("cluster: watch group %q: %w", g.name, err)
		}
		s.goTracked(func() { s.watchLoop(g, ch) })
	}
	if s.dir != nil {
		ch, err := s.reg.Watch(s.ctx, s.group.Name)
		if err != nil {
			s.registryErrors.Add(1)
			return fmt.Errorf("cluster: watch own group %q: %w", s.group.Name, err)
		}
		s.goTracked(func() { s.dir.watchLoop(ch) })
	}
	if len(s.hooks.onPeers) > 0 {
		ch, err := s.reg.Watch(s.ctx, s.group.Name)
		if err != nil {
			return fmt.Errorf("cluster: watch own group %q: %w", s.group.Name, err)
		}
		s.goTracked(func() { s.peersLoop(ch) })
	}
	return nil
}

func (s *Server) advertise(a net.Addr) (string, error) {
	if s.opts.Advertise != "" {
		return s.opts.Advertise, nil
	}
	tcp, ok := a.(*net.TCPAddr)
	if ok && (tcp.IP == nil || tcp.IP.IsUnspecified()) {
		return "", fmt.Errorf("%w: listening on all interfaces (%s): set Advertise to an address peers can reach", ErrBadOptions, a)
	}
	return a.String(), nil
}

func (s *Server) sortedRelated() []*remoteGroup {
	gs := make([]*remoteGroup, 0, len(s.related))
	for _, g := range s.related {
		gs = append(gs, g)
	}
	sort.Slice(gs, func(i, j int) bool {
		if gs[i].dir != gs[j].dir {
			return gs[i].dir < gs[j].dir
		}
		return gs[i].name < gs[j].name
	})
	return gs
}

// goTracked runs f on a goroutine the server waits for on shutdown, and
// reports true. Once the server has stopped starting goroutines it reports
// false and f does not run: the caller cleans up instead.
func (s *Server) goTracked(f func()) bool { return s.goroutine.run(f) }

// running reports whether the server serves: it is starting or started,
// and neither Shutdown nor Close has begun.
func (s *Server) running() bool {
	st := serverState(s.state.Load())
	return st == stateStarting || st == stateRunning
}

// Shutdown stops the server gracefully: it deregisters, tells linked peers
// it is leaving, stops accepting links, stops the plugins, flushes and
// closes every link, and waits for its goroutines. When ctx ends first it
// closes every connection at once and returns ctx's error without waiting
// further (as net/http.Server.Shutdown does); Close then waits for the
// rest, such as a plugin's Stop that ignores its context. Called during
// Start, it waits for Start to return (within ctx). Calling it again, or
// after Close, returns ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	for {
		switch serverState(s.state.Load()) {
		case stateNew:
			if s.state.CompareAndSwap(int32(stateNew), int32(stateClosed)) {
				s.endUnstarted()
				return nil
			}
		case stateStarting:
			select {
			case <-s.startDone:
			case <-ctx.Done():
				return ctx.Err()
			}
		case stateRunning:
			if s.state.CompareAndSwap(int32(stateRunning), int32(stateDraining)) {
				go s.drain(ctx)
				select {
				case <-s.stopped:
					return nil
				case <-ctx.Done():
					s.log.Warn().Err(ctx.Err()).Msg("shutdown deadline passed; closing every connection")
					s.hardClose()
					return ctx.Err()
				}
			}
		default:
			return ErrServerClosed
		}
	}
}

// drain is Shutdown's work. It closes stopped when done, even when
// Shutdown returned at its deadline.
func (s *Server) drain(ctx context.Context) {
	s.log.Info().Msg("server shutting down")
	s.announceLeaving(ctx)
	s.deregister(ctx)
	s.closeListener()
	for _, l := range s.liveLinks() {
		l.sendSystem(protocol.KindLeaving, nil)
	}
	if s.clients != nil {
		if s.draining.Load() {
			s.clients.shutdown(protocol.ReasonDraining, "server drained; connect to another server of the group")
		} else {
			s.clients.shutdown(protocol.ReasonShutdown, "server shutting down; reconnect to another server")
		}
	}
	s.hooks.stop(ctx)
	for _, l := range s.liveLinks() {
		l.close(protocol.ReasonShutdown, "server shutting down", nil, true)
	}
	s.cancel()
	s.goroutine.closeAndWait()
	s.state.Store(int32(stateClosed))
	close(s.stopped)
	s.log.Info().Msg("server stopped")
}

// endUnstarted ends a server that was never started.
func (s *Server) endUnstarted() {
	s.cancel()
	s.goroutine.close()
	close(s.stopped)
}

// Close stops the server at once: it closes the listener and every
// connection without telling peers, and waits for its goroutines. Plugins'
// Stop hooks still run, with an expired context. After a Shutdown that
// returned at its deadline, Close closes what is left and waits for
// Shutdown's work to end. Called during Start, it cancels what Start
// waits on and waits for it to return. Calling it again returns
// ErrServerClosed.
func (s *Server) Close() error {
	waitedStart := false
	for {
		st := serverState(s.state.Load())
		switch st {
		case stateStarting:
			s.cancel()
			<-s.startDone
			waitedStart = true
			continue
		case stateClosed:
			if waitedStart {
				// Start failed and closed the server itself.
				<-s.stopped
				return nil
			}
			return ErrServerClosed
		}
		if !s.state.CompareAndSwap(int32(st), int32(stateClosed)) {
			continue
		}
		switch st {
		case stateNew:
			s.endUnstarted()
			return nil
		case stateDraining:
			// Shutdown's work is running; make it finish now.
			s.hardClose()
			<-s.stopped
			return nil
		default: // stateRunning
			s.closeRunning()
			return nil
		}
	}
}

// closeRunning is Close's work on a running server.
func (s *Server) closeRunning() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.deregister(ctx)
	s.hardClose()
	s.hooks.stop(ctx)
	s.goroutine.closeAndWait()
	close(s.stopped)
}

// leavingNotice is how long a server shutting down gracefully stays
// registered as leaving before it deregisters, so that watchers see it
// leave (and drop it at once) rather than see it vanish, which they
// debounce by links.leaveGrace as they would a registry blip.
const leavingNotice = 300 * time.Millisecond

// announceLeaving marks the registered member leaving
// (registry.MetaLeaving) and gives watchers leavingNotice to see it.
func (s *Server) announceLeaving(ctx context.Context) {
	if ctx.Err() != nil || !s.markMeta(ctx, registry.MetaLeaving, "leaving") {
		return
	}
	t := time.NewTimer(leavingNotice)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (s *Server) deregister(ctx context.Context) {
	s.mu.Lock()
	was := s.registered
	s.registered = false
	s.mu.Unlock()
	if !was {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if ctx.Err() != nil {
		// Best effort even when the caller's deadline is gone.
		dctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
	}
	if err := s.reg.Deregister(dctx); err != nil && !errors.Is(err, registry.ErrNotRegistered) {
		s.registryErrors.Add(1)
		s.log.Warn().Err(err).Msg("deregister failed")
	}
}

func (s *Server) closeListener() {
	s.mu.Lock()
	ln, local := s.ln, s.localLn
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	if local != nil {
		local.Close() // and removes the socket file
	}
}

// listenLinkSocket accepts links on this server's socket in sockDir too,
// when it can (localsock.go).
func (s *Server) listenLinkSocket() {
	ln := s.listenLocal(s.sockDir, s.advertised)
	if ln == nil {
		return
	}
	s.mu.Lock()
	s.localLn = ln
	s.mu.Unlock()
	if !s.goTracked(func() { s.acceptLoop(ln) }) {
		ln.Close()
		return
	}
	s.goTracked(func() {
		if n := sweepSockets(s.ctx, s.sockDir, time.Now()); n > 0 {
			s.log.Info().Int("removed", n).Str("socket_dir", s.sockDir).
				Msg("removed the link sockets of servers that ended without removing them")
		}
	})
}

// hardClose closes the listener, every handshaking connection and every
// link at once, and cancels the server's context.
func (s *Server) hardClose() {
	s.cancel()
	s.closeListener()
	s.mu.Lock()
	for c := range s.handshaking {
		c.Close()
	}
	links := make([]*link, 0, len(s.linkSet))
	for l := range s.linkSet {
		links = append(links, l)
	}
	s.mu.Unlock()
	for _, l := range links {
		l.abort()
	}
	if s.clients != nil {
		s.clients.abort()
	}
}

func (s *Server) liveLinks() []*link {
	s.mu.Lock()
	defer s.mu.Unlock()
	links := make([]*link, 0, len(s.linkSet))
	for l := range s.linkSet {
		links = append(links, l)
	}
	return links
}

// trackConn records a connection that is still handshaking, so a hard close
// can end it. It returns false when the server is no longer running.
func (s *Server) trackConn(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running() {
		return false
	}
	s.handshaking[c] = struct{}{}
	return true
}

func (s *Server) untrackConn(c net.Conn) {
	s.mu.Lock()
	delete(s.handshaking, c)
	s.mu.Unlock()
}

// Host returns the API the server hands its plugins, for embedding code
// (tests, tools) that wants the same view.
func (s *Server) Host() plugins.Host { return &host{s: s, log: s.log} }
