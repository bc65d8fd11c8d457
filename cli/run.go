package cli

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/dashboard"
	"github.com/cloudrift/cloudrift/ops"
	"github.com/cloudrift/cloudrift/registry"
	"github.com/cloudrift/cloudrift/registry/embedded"
)

type runOptions struct {
	configFlag
	group     string
	id        string
	listen    string
	advertise string
	ops       string
	logLevel  string
	logJSON   bool
	level     zerolog.Level // -log-level, once checked
}

func (o *runOptions) flagSet(prog string) *flag.FlagSet {
	fs := newFlagSet(prog, "run", "-group NAME [-config cluster.yaml] [-id ID] [-listen host:port] [-advertise host:port] [-ops host:port] [-log-level info] [-log-json]", `
Run runs one server of one group: a replica of a real deployment. It finds
the other servers through the registry the system file names (consul, or a
connector compiled into this binary; the embedded registry only sees servers
of this process, so a lone "run" with it links with nobody). Every flag may also come from the environment variable
named beside it, so one system file and one command line serve every replica;
a flag given on the command line wins. The first interrupt (Ctrl-C) or SIGTERM
drains the server (an external group's players are told to move to the
group's other servers, for up to clients.drainTimeout) and shuts it down
gracefully; a second one closes it at once. POST /drain on the operations
port drains it too, and the command ends once it has stopped.`)
	o.defineConfig(fs)
	fs.StringVar(&o.group, "group", envDefault("CLOUDRIFT_GROUP", ""), "the `name` of this server's group; required (env CLOUDRIFT_GROUP)")
	fs.StringVar(&o.id, "id", envDefault("CLOUDRIFT_ID", ""), "this server's `ID`, unique in the system; empty: <group>-<random> (env CLOUDRIFT_ID)")
	fs.StringVar(&o.listen, "listen", envDefault("CLOUDRIFT_LISTEN", ""), "`host:port` to listen on; empty: the group's listen (env CLOUDRIFT_LISTEN)")
	fs.StringVar(&o.advertise, "advertise", envDefault("CLOUDRIFT_ADVERTISE", ""), "`host:port` other servers dial; empty: the listen address, which then needs a host; \"auto\": this host's address on the route to the registry, \"auto:IFACE\": the interface's, with the listen port (env CLOUDRIFT_ADVERTISE)")
	fs.StringVar(&o.ops, "ops", envDefault("CLOUDRIFT_OPS", ""), "`host:port` of the operations port (/metrics, /healthz, /readyz, /status); empty: the group's ops.listen, loopback by default; \"off\": none (env CLOUDRIFT_OPS)")
	fs.StringVar(&o.logLevel, "log-level", envDefault("CLOUDRIFT_LOG_LEVEL", "info"), "log `level`: "+logLevels+" (env CLOUDRIFT_LOG_LEVEL)")
	fs.BoolVar(&o.logJSON, "log-json", envDefault("CLOUDRIFT_LOG_JSON", "") == "true", "write logs as JSON lines (one object per line, RFC 3339 times with nanoseconds) for machines; true when CLOUDRIFT_LOG_JSON=true")
	return fs
}

func (o *runOptions) jsonLogs() bool { return o.logJSON }

func (o *runOptions) check() (err error) {
	if o.group == "" {
		return errors.New("-group (or CLOUDRIFT_GROUP) is required")
	}
	o.level, err = parseLevel(o.logLevel)
	return err
}

func runRun(e *env, o *runOptions, sys *config.System) int {
	if e.weakSecret(o.config, sys) {
		return exitFail
	}
	g, ok := sys.Group(o.group)
	if !ok {
		names := make([]string, len(sys.Groups))
		for i, g := range sys.Groups {
			names[i] = g.Name
		}
		fmt.Fprintf(e.stderr, "%s run: %s has no group %q (groups: %s)\n", e.prog, o.config, o.group, strings.Join(names, ", "))
		return exitFail
	}
	log := e.logger(o.level)
	if o.logJSON {
		log = e.jsonLogger(o.level)
	}

	conn, err := e.connector(sys, log)
	if err != nil {
		fmt.Fprintf(e.stderr, "%s run: %v\n", e.prog, err)
		return exitFail
	}
	ln, err := o.listenForAdvertise(g, conn)
	if err != nil {
		conn.Close()
		fmt.Fprintf(e.stderr, "%s run: %v\n", e.prog, err)
		return exitFail
	}
	opsLn, opsHandler, err := openOps(o.ops, g)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		conn.Close()
		fmt.Fprintf(e.stderr, "%s run: %v\n", e.prog, err)
		return exitFail
	}
	defer opsLn.Close()
	listen := o.listen
	if listen == "" {
		listen = g.Listen
	}
	srv, err := cluster.New(cluster.Options{
		System:    sys,
		Group:     o.group,
		ID:        o.id,
		Listener:  ln,
		Listen:    o.listen,
		Advertise: o.advertise,
		Registry:  conn,
		Logger:    &log,
		Meta:      registeredOps(opsLn, o.advertise, listen),
	})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		conn.Close()
		for _, l := range splitErrors(err) {
			fmt.Fprintln(e.stderr, l)
		}
		return exitFail
	}
	if opsHandler != nil {
		opsHandler.set(ops.NewHandler(ops.Options{Pprof: g.Ops.Pprof, Token: g.Ops.Token}, srv))
	}
	if err := srv.Start(e.ctx); err != nil {
		conn.Close()
		if e.ctx.Err() != nil {
			fmt.Fprintf(e.stderr, "%s run: interrupted while starting\n", e.prog)
			fmt.Fprintln(e.stdout, "stopped")
			return exitOK
		}
		fmt.Fprintf(e.stderr, "%s run: %v\n", e.prog, err)
		return exitFail
	}
	fmt.Fprintf(e.stdout, "server %s of group %q (system %q) listening on %s, %s registry\n",
		srv.ID(), o.group, sys.System, srv.Addr(), registryType(sys))
	advertised := o.advertise
	if advertised == "" {
		advertised = srv.Addr().String()
	}
	if u := clientURL(g, advertised); u != "" {
		fmt.Fprintln(e.stdout, u)
	}
	if opsLn != nil {
		fmt.Fprintf(e.stdout, "operations port %s (/metrics, /healthz, /readyz, /status, POST /drain)\n", opsLn.URL())
	}

	select {
	case <-e.ctx.Done():
	case <-srv.Done():
	}
	code := exitOK
	if err := e.stopRun(g, srv, conn); err != nil {
		fmt.Fprintf(e.stderr, "%s run: %v\n", e.prog, err)
		code = exitFail
	}
	fmt.Fprintln(e.stdout, "stopped")
	return code
}

// connector opens the registry connector the system file names: one of
// the connector types compiled into this binary (package registry).
func (e *env) connector(sys *config.System, log zerolog.Logger) (registry.Connector, error) {
	t := registryType(sys)
	if t == embedded.Type {
		e.note(zerolog.WarnLevel, "%s run: warning: the embedded registry lives in this process: no other process will see this server, nor this server them (use a shared registry such as consul, or \"%s dev\" for the whole system in one process)", e.prog, e.prog)
	}
	return registry.Open(registrySpec(sys), registry.Options{
		System: sys.System,
		Logger: log.With().Str("component", t).Logger(),
	})
}

// registrySpec is the system file's registry block as package registry
// takes it.
func registrySpec(sys *config.System) registry.Spec {
	return registry.Spec{Type: registryType(sys), Settings: sys.Registry.Settings, File: sys.File, Line: sys.Registry.Line}
}

// jsonLogger writes logs to stderr as JSON lines at level lvl, each with a
// "time" field in RFC 3339 with nanoseconds, so tools can order and time
// events across processes.
func (e *env) jsonLogger(lvl zerolog.Level) zerolog.Logger {
	return zerolog.New(e.stderr).Level(lvl).Hook(timeHook{})
}

// timeHook adds the event's time with nanoseconds (zerolog's Timestamp has
// the precision of a package-level setting, which a library must not
// change).
type timeHook struct{}

func (timeHook) Run(ev *zerolog.Event, _ zerolog.Level, _ string) {
	ev.Str(zerolog.TimestampFieldName, time.Now().Format(time.RFC3339Nano))
}

// openOps opens the operations port of a server of group g, on addr or
// the group's ops.listen when addr is empty; nil when addr is "off". It
// opens before the server exists, so that its URL can go into the
// registry (for the dashboard); until the handler is set it answers 503.
func openOps(addr string, g *config.Group) (*ops.Listener, *lateHandler, error) {
	if addr == "off" {
		return nil, nil, nil
	}
	if addr == "" {
		addr = g.Ops.Listen
	}
	h := new(lateHandler)
	ln, err := ops.Listen(addr, h)
	if err != nil {
		return nil, nil, err
	}
	return ln, h, nil
}

// lateHandler serves 503 until set gives it the real handler.
type lateHandler struct{ h atomic.Pointer[http.Handler] }

func (l *lateHandler) set(h http.Handler) { l.h.Store(&h) }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := l.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	http.Error(w, "starting", http.StatusServiceUnavailable)
}

// registeredOps returns the registry metadata that tells the dashboard
// where the operations port is: its URL, with a wildcard host replaced by
// the host the server advertises (from listen when advertise is empty).
func registeredOps(ln *ops.Listener, advertise, listen string) map[string]string {
	if ln == nil {
		return nil
	}
	u := ln.URL()
	host, port, err := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); err == nil && ip != nil && ip.IsUnspecified() {
		addr := advertise
		if addr == "" {
			addr = listen
		}
		if h, _, err := net.SplitHostPort(addr); err == nil && h != "" {
			u = "http://" + net.JoinHostPort(h, port)
		}
	}
	return map[string]string{dashboard.MetaOps: u}
}
