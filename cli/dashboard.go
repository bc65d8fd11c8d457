package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/dashboard"
	"github.com/cloudrift/cloudrift/registry"
)

// DefaultDashboardListen is dashboard's -listen default.
const DefaultDashboardListen = "127.0.0.1:7070"

type dashboardOptions struct {
	configFlag
	listen   string
	ops      List
	interval time.Duration
}

func (o *dashboardOptions) flagSet(prog string) *flag.FlagSet {
	fs := newFlagSet(prog, "dashboard", "[-config cluster.yaml] [-listen "+DefaultDashboardListen+"] [-ops URL,URL,...] [-interval 1s]", `
Dashboard serves one web page of a running system: each group and its
servers (ready, not ready, down), the game clients connected, the links
between servers as a graph, messages per second per link and per group, and
the recent link, client and handshake closes with their reasons. The page
updates itself every second.

The dashboard polls the servers' operations ports (/status and /metrics):
those -ops lists, and, when the system file names a registry other than the
embedded one, every registered server whose metadata carries its operations
URL under "ops". Registered servers without one are shown from the registry
and their peers' links. A server whose port stops answering turns red.

"cloudrift dev -dashboard ADDR" serves the same page beside dev's servers.`)
	o.defineConfig(fs)
	fs.StringVar(&o.listen, "listen", DefaultDashboardListen, "`host:port` the page is served on")
	fs.Var(&o.ops, "ops", "base `URLs` of operations ports to poll (http://host:port); repeat it, or separate them with commas")
	fs.DurationVar(&o.interval, "interval", time.Second, "how often to poll the operations ports")
	return fs
}

func (o *dashboardOptions) check() error {
	if o.interval <= 0 {
		return fmt.Errorf("-interval %s: want a positive duration", o.interval)
	}
	for _, u := range o.ops {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("-ops %q: want a URL like http://127.0.0.1:9100", u)
		}
	}
	return nil
}

func runDashboard(e *env, o *dashboardOptions, sys *config.System) int {
	opts := dashboard.Options{System: sys, Targets: o.ops, Interval: o.interval}
	if registryType(sys) != config.RegistryEmbedded {
		c, err := registry.Open(registrySpec(sys), registry.Options{System: sys.System})
		if err != nil {
			fmt.Fprintf(e.stderr, "%s dashboard: %v\n", e.prog, err)
			return exitFail
		}
		defer c.Close()
		opts.Registry = c
	} else if len(o.ops) == 0 {
		fmt.Fprintf(e.stderr, "%s dashboard: %s uses the embedded registry, which no other process sees: list the operations ports with -ops (or run \"%s dev -dashboard ADDR\")\n",
			e.prog, o.config, e.prog)
		return exitUsage
	}
	ds, err := startDashboard(e.ctx, o.listen, opts)
	if err != nil {
		fmt.Fprintf(e.stderr, "%s dashboard: %v\n", e.prog, err)
		return exitFail
	}
	fmt.Fprintf(e.stdout, "dashboard of %q: %s\n", sys.System, ds.URL())
	<-e.ctx.Done()
	if err := ds.Close(); err != nil {
		fmt.Fprintf(e.stderr, "%s dashboard: %v\n", e.prog, err)
		return exitFail
	}
	return exitOK
}

// dashboardServer is a dashboard polling and serving its page.
type dashboardServer struct {
	srv    *http.Server
	ln     net.Listener
	cancel context.CancelFunc
	done   chan error // Run's result
}

// startDashboard serves a dashboard of opts on addr until Close or ctx
// is done.
func startDashboard(ctx context.Context, addr string, opts dashboard.Options) (*dashboardServer, error) {
	d, err := dashboard.New(opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dashboard: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	ds := &dashboardServer{srv: &http.Server{Handler: d, ReadHeaderTimeout: 10 * time.Second}, ln: ln, cancel: cancel, done: make(chan error, 1)}
	go ds.srv.Serve(ln)
	go func() { ds.done <- d.Run(ctx) }()
	return ds, nil
}

// URL is the page's address, like "http://127.0.0.1:7070/".
func (ds *dashboardServer) URL() string { return "http://" + ds.ln.Addr().String() + "/" }

// Close stops polling and serving, and returns why polling stopped if it
// was not Close.
func (ds *dashboardServer) Close() error {
	ds.cancel()
	err := <-ds.done
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if serr := ds.srv.Shutdown(ctx); serr != nil {
		ds.srv.Close()
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
