package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/dashboard"
	"github.com/cloudrift/cloudrift/ops"
	"github.com/cloudrift/cloudrift/registry/embedded"
)

type devOptions struct {
	configFlag
	interval time.Duration
	logLevel string
	logJSON  bool
	bots     int
	dash     string        // -dashboard: where to serve the dashboard; "": none
	level    zerolog.Level // -log-level, once checked
}

// DefaultDevBots is dev's -bots default: how many simulated players the
// binary's dev hooks start.
const DefaultDevBots = 4

func (o *devOptions) flagSet(prog string) *flag.FlagSet {
	fs := newFlagSet(prog, "dev", "[-config cluster.yaml] [-interval 1s] [-log-level warn] [-log-json] [-bots 4] [-dashboard host:port]", `
Dev runs the whole system of a system file in this one process: every group
with its replicas, upstream groups first, all on one in-process (embedded)
registry, with real TCP links on loopback. Each server listens on its group's
listen address; a fixed port p gives replica i the port p+i-1. Server IDs are
<group>-<i>.

Dev prints each server's address, a line once every link is up, and then,
every interval, the servers, links, game clients and messages per second of
each group. Logs go to stderr.

Once every link is up, dev runs the binary's dev hooks, if it has any: the
stock cloudrift binary starts -bots simulated players of the open-world
example against the client servers, and prints their progress (players,
messages per second, round-trip times) under each table.

The first interrupt (Ctrl-C) or SIGTERM stops the hooks, then shuts every
server down gracefully, downstream groups first; a second one closes them at
once.`)
	o.defineConfig(fs)
	fs.DurationVar(&o.interval, "interval", time.Second, "how often to print the figures of each group")
	fs.StringVar(&o.logLevel, "log-level", "warn", "log `level`: "+logLevels)
	fs.BoolVar(&o.logJSON, "log-json", envDefault("CLOUDRIFT_LOG_JSON", "") == "true", "write every line on stderr as JSON (one object per line, RFC 3339 times with nanoseconds); true when CLOUDRIFT_LOG_JSON=true")
	fs.IntVar(&o.bots, "bots", DefaultDevBots, "simulated players the binary's dev hooks start; 0 for none")
	fs.StringVar(&o.dash, "dashboard", "", "`host:port` to serve the dashboard (a live web page of the system) on; empty: none")
	return fs
}

// devServer is one server dev mode runs.
type devServer struct {
	srv  *cluster.Server
	conn *embedded.Connector
}

func (o *devOptions) jsonLogs() bool { return o.logJSON }

func (o *devOptions) check() (err error) {
	switch {
	case o.interval <= 0:
		return fmt.Errorf("-interval %s: want a positive duration", o.interval)
	case o.bots < 0:
		return fmt.Errorf("-bots %d: want 0 or more", o.bots)
	}
	o.level, err = parseLevel(o.logLevel)
	return err
}

func runDev(e *env, o *devOptions, sys *config.System) int {
	if errs := checkPlugins(sys); len(errs) > 0 {
		e.problems(o.config, errs)
		return exitFail
	}
	log := e.logger(o.level)
	if t := registryType(sys); t != config.RegistryEmbedded {
		e.note(zerolog.WarnLevel, "%s dev: the file names the %s registry; dev runs every server in this process on the embedded registry instead", e.prog, t)
	}
	p := newPlan(sys)

	// Start upstream groups first, so dialers find their acceptors listening.
	hub := embedded.NewHub()
	var servers []devServer
	for _, name := range p.topo.Order() {
		g, _ := sys.Group(name)
		for i := 1; i <= g.Replicas; i++ {
			if e.ctx.Err() != nil {
				return e.stopDev(servers, "interrupted while starting")
			}
			ds, err := startDevServer(e.ctx, sys, g, i, hub, &log)
			if err != nil {
				if e.ctx.Err() != nil {
					return e.stopDev(servers, "interrupted while starting")
				}
				fmt.Fprintf(e.stderr, "%s dev: %s-%d: %v\n", e.prog, name, i, err)
				e.stopDev(servers, "")
				return exitFail
			}
			servers = append(servers, ds)
		}
	}

	fmt.Fprintf(e.stdout, "system %q: %s in %s, embedded registry\n",
		sys.System, plural(len(servers), "server", "servers"), plural(len(sys.Groups), "group", "groups"))
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	for _, ds := range servers {
		g, _ := sys.Group(ds.srv.GroupName())
		addr := ds.srv.Addr().String()
		if u := clientURL(g, addr); u != "" {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", ds.srv.ID(), g.Name, addr, u)
		} else {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", ds.srv.ID(), g.Name, addr)
		}
	}
	tw.Flush()
	// One operations port serves every server of the process; pprof is
	// on, for loopback only.
	all := make([]*cluster.Server, len(servers))
	for i, ds := range servers {
		all[i] = ds.srv
	}
	opsLn, err := ops.Listen(config.DefaultListen, ops.NewHandler(ops.Options{Pprof: true}, all...))
	if err != nil {
		fmt.Fprintf(e.stderr, "%s dev: %v\n", e.prog, err)
		e.stopDev(servers, "")
		return exitFail
	}
	defer opsLn.Close()
	fmt.Fprintf(e.stdout, "operations port %s (/metrics, /healthz, /readyz, /status, /debug/pprof/, POST /drain)\n", opsLn.URL())
	if o.dash != "" {
		ds, err := startDashboard(e.ctx, o.dash, dashboard.Options{System: sys, Targets: []string{opsLn.URL()}})
		if err != nil {
			fmt.Fprintf(e.stderr, "%s dev: %v\n", e.prog, err)
			e.stopDev(servers, "")
			return exitFail
		}
		defer ds.Close()
		fmt.Fprintf(e.stdout, "dashboard %s\n", ds.URL())
	}
	fmt.Fprintf(e.stdout, "waiting for %s...\n", plural(p.links, "link", "links"))

	mon := newMonitor(sys, p, servers)
	hooks := &devHooks{}
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	pollC := poll.C
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	for {
		select {
		case <-e.ctx.Done():
			hooks.stop(e)
			return e.stopDev(servers, "")
		case <-pollC:
			if mon.allLinked() {
				fmt.Fprintf(e.stdout, "all %s up, %s\n", plural(len(servers), "server", "servers"), plural(p.links, "link", "links"))
				poll.Stop()
				pollC = nil
				hooks.start(e, DevInfo{
					Config:        sys,
					ClientServers: devClientServers(sys, servers),
					Bots:          o.bots,
					Interval:      o.interval,
					Logger:        &log,
				})
			}
		case now := <-tick.C:
			mon.print(e.stdout, now)
			for _, l := range hooks.status.snapshot() {
				fmt.Fprintf(e.stdout, "  %s\n", l)
			}
		}
	}
}

// clientURL is where game clients reach a server of an external group at
// addr, or "" for an internal group.
func clientURL(g *config.Group, addr string) string {
	if u := g.ClientURL(addr); u != "" {
		return "game clients: " + u
	}
	return ""
}

// devClientServers returns the servers of external groups and their
// WebSocket endpoints, dialable from this process (a listener on all
// interfaces is reached on loopback).
func devClientServers(sys *config.System, servers []devServer) []ClientServer {
	var out []ClientServer
	for _, ds := range servers {
		g, _ := sys.Group(ds.srv.GroupName())
		addr := ds.srv.Addr().String()
		if host, port, err := net.SplitHostPort(addr); err == nil && (host == "" || net.ParseIP(host).IsUnspecified()) {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		if u := g.ClientURL(addr); u != "" {
			out = append(out, ClientServer{ID: ds.srv.ID(), Group: g.Name, URL: u})
		}
	}
	return out
}

// devHooks runs the binary's dev hooks.
type devHooks struct {
	status devStatus
	cancel context.CancelFunc // nil until started
	done   chan struct{}      // closed when every hook has returned
}

// start runs every hook on its own goroutine.
func (h *devHooks) start(e *env, info DevInfo) {
	if len(e.opts.devHooks) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan struct{})
	h.status.lines = make([]string, len(e.opts.devHooks))
	var wg sync.WaitGroup
	for i, hook := range e.opts.devHooks {
		info := info
		info.ClientServers = slices.Clone(info.ClientServers)
		info.status, info.index = &h.status, i
		wg.Add(1)
		go func() {
			defer wg.Done()
			hook(ctx, info)
		}()
	}
	go func() {
		wg.Wait()
		close(h.done)
	}()
}

// stop ends the hooks and waits for them, at most ShutdownTimeout (or
// until e.force closes).
func (h *devHooks) stop(e *env) {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case <-h.done:
	case <-e.force:
	case <-time.After(ShutdownTimeout):
		fmt.Fprintf(e.stderr, "%s dev: the dev hooks did not stop within %s\n", e.prog, ShutdownTimeout)
	}
}

// startDevServer starts replica i (from 1) of group g.
func startDevServer(ctx context.Context, sys *config.System, g *config.Group, i int, hub *embedded.Hub, log *zerolog.Logger) (devServer, error) {
	ln, advertise, err := listenReplica(g.Listen, i)
	if err != nil {
		return devServer{}, err
	}
	conn := hub.Connector()
	srv, err := cluster.New(cluster.Options{
		System:    sys,
		Group:     g.Name,
		ID:        fmt.Sprintf("%s-%d", g.Name, i),
		Listener:  ln,
		Advertise: advertise,
		Registry:  conn,
		Logger:    log,
	})
	if err != nil {
		ln.Close()
		conn.Close()
		return devServer{}, err
	}
	if err := srv.Start(ctx); err != nil {
		conn.Close() // Start closed the listener
		return devServer{}, err
	}
	return devServer{srv: srv, conn: conn}, nil
}

// listenReplica listens for replica i (from 1) on the group's address (see
// replicaAddr). A listener on all interfaces advertises the loopback
// address, since every peer is in this process.
func listenReplica(addr string, i int) (net.Listener, string, error) {
	addr, err := replicaAddr(addr, i)
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	advertise := ""
	if host, _, _ := net.SplitHostPort(addr); host == "" || net.ParseIP(host).IsUnspecified() {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		advertise = net.JoinHostPort("127.0.0.1", port)
	}
	return ln, advertise, nil
}

// replicaAddr is the address replica i (from 1) of a group listening on
// addr listens on: a fixed port p becomes p+i-1; port 0 stays 0.
func replicaAddr(addr string, i int) (string, error) {
	if addr == "" {
		addr = config.DefaultListen
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return addr, nil // a service name: net.Listen decides
	}
	if n != 0 {
		if n+i-1 > 65535 {
			return "", fmt.Errorf("listen address %q: no port for replica %d", addr, i)
		}
		port = strconv.Itoa(n + i - 1)
	}
	return net.JoinHostPort(host, port), nil
}

// stopDev shuts servers down in reverse start order (downstream groups
// first) within ShutdownTimeout, or at once when e.force closes, and prints
// "stopped". why, when not empty, is printed first.
func (e *env) stopDev(servers []devServer, why string) int {
	if why != "" {
		e.note(zerolog.InfoLevel, "%s dev: %s", e.prog, why)
	}
	if len(servers) > 0 {
		e.note(zerolog.InfoLevel, "%s dev: stopping %s (interrupt again to stop at once)", e.prog, plural(len(servers), "server", "servers"))
	}
	code := exitOK
	stopped := make([]stoppable, len(servers))
	for i, ds := range servers {
		stopped[len(servers)-1-i] = stoppable{ds.srv, ds.conn}
	}
	if err := e.shutdown(stopped); err != nil {
		fmt.Fprintf(e.stderr, "%s dev: %v\n", e.prog, err)
		code = exitFail
	}
	fmt.Fprintln(e.stdout, "stopped")
	return code
}

// cancelOnForce calls cancel when e.force closes, on a goroutine that ends
// with ctx (cancel it to end the goroutine).
func (e *env) cancelOnForce(ctx context.Context, cancel context.CancelFunc) {
	go func() {
		select {
		case <-e.force:
			cancel()
		case <-ctx.Done():
		}
	}()
}

// stoppable is a server and the registry connector it owns.
type stoppable struct {
	srv  *cluster.Server
	conn interface{ Close() error }
}

// shutdown stops each server in order, gracefully within ShutdownTimeout,
// and closes its connector. Once the deadline passes or e.force closes, the
// rest are closed at once (a Shutdown under way when e.force closes finishes
// as a Close). It returns why it was not graceful, if it was not.
func (e *env) shutdown(ss []stoppable) error {
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel() // also ends cancelOnForce's goroutine
	e.cancelOnForce(ctx, cancel)

	forced := false
	for _, s := range ss {
		select {
		case <-e.force:
			forced = true
		default:
		}
		var err error
		if forced || ctx.Err() != nil {
			err = s.srv.Close()
		} else if err = s.srv.Shutdown(ctx); ctx.Err() != nil {
			// Shutdown returned at its deadline without waiting for the
			// server's goroutines, which may still use the connector:
			// Close waits for them.
			err = s.srv.Close()
		}
		if err != nil && !errors.Is(err, cluster.ErrServerClosed) {
			fmt.Fprintf(e.stderr, "%s: %s: %v\n", e.prog, s.srv.ID(), err)
		}
		s.conn.Close()
	}
	select {
	case <-e.force:
		return errors.New("stopped at once by a second signal")
	default:
	}
	if ctx.Err() != nil {
		return fmt.Errorf("graceful shutdown took longer than %s: the rest were closed at once", ShutdownTimeout)
	}
	return nil
}

// monitor computes the figures dev prints.
type monitor struct {
	sys     *config.System
	plan    plan
	byGroup map[string][]*cluster.Server
	last    map[string][2]uint64 // messages in and out per group at lastAt
	lastAt  time.Time
}

func newMonitor(sys *config.System, p plan, servers []devServer) *monitor {
	m := &monitor{sys: sys, plan: p, byGroup: make(map[string][]*cluster.Server), last: make(map[string][2]uint64), lastAt: time.Now()}
	for _, ds := range servers {
		g := ds.srv.GroupName()
		m.byGroup[g] = append(m.byGroup[g], ds.srv)
	}
	for _, g := range sys.Groups {
		m.last[g.Name] = m.messages(g.Name)
	}
	return m
}

// allLinked reports whether every server has a link with every server it
// should link with.
func (m *monitor) allLinked() bool {
	for g, ss := range m.byGroup {
		for _, s := range ss {
			if s.Stats().LinksUp < m.plan.perGroup[g] {
				return false
			}
		}
	}
	return true
}

func (m *monitor) messages(group string) [2]uint64 {
	var in, out uint64
	for _, s := range m.byGroup[group] {
		st := s.Stats()
		in += st.MessagesIn
		out += st.MessagesOut
	}
	return [2]uint64{in, out}
}

// print writes one table: per group, the servers running, the links up
// (counted at this group's end) and the messages per second since the last
// table.
func (m *monitor) print(w io.Writer, now time.Time) {
	secs := now.Sub(m.lastAt).Seconds()
	m.lastAt = now
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tGROUP\tSERVERS\tLINKS\tCLIENTS\tIN/S\tOUT/S\n", now.Format("15:04:05"))
	for _, g := range m.sys.Groups {
		running, links, clients := 0, 0, 0
		for _, s := range m.byGroup[g.Name] {
			select {
			case <-s.Done():
				continue
			default:
			}
			running++
			st := s.Stats()
			links += st.LinksUp
			clients += st.Clients
		}
		cur := m.messages(g.Name)
		prev := m.last[g.Name]
		m.last[g.Name] = cur
		fmt.Fprintf(tw, "\t%s\t%d/%d\t%d/%d\t%d\t%.0f\t%.0f\n", g.Name, running, g.Replicas,
			links, g.Replicas*m.plan.perGroup[g.Name], clients, rate(cur[0]-prev[0], secs), rate(cur[1]-prev[1], secs))
	}
	tw.Flush()
}

func rate(n uint64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(n) / secs
}
