// Package dashboard serves one live web page of a running system: its
// groups and their servers (ready or not, game clients connected), the
// links between servers as a graph, messages per second per link and per
// group, and the recent link, client and handshake closes with their
// reasons.
//
// The dashboard polls the operations ports of the servers (package ops):
// /status for each server and its links, /metrics for the close counters.
// It finds them in Options.Targets and, when it has a registry, in each
// member's metadata under MetaOps. Rates and closes are the deltas of
// counters between two polls. The page (plain HTML, CSS and JavaScript,
// embedded: it works offline) polls the dashboard's /state.json every
// second and redraws without a reload.
package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/registry"
)

// MetaOps is the registry metadata key whose value is the base URL of a
// server's operations port (http://host:port). A dashboard with a registry
// polls every member that carries it.
const MetaOps = "ops"

// DefaultInterval is how often the dashboard polls when Options.Interval
// is zero.
const DefaultInterval = time.Second

// ErrNoSystem is returned by New when Options.System is nil.
var ErrNoSystem = errors.New("dashboard: no system")

// Options configure a Dashboard.
type Options struct {
	// System names the groups, in the order the page shows them. Required.
	System *config.System
	// Targets are base URLs of operations ports (http://host:port) to
	// poll. A port serving several servers (dev's) is fine.
	Targets []string
	// Registry, when set, is watched for each group's members: members
	// whose metadata has MetaOps are polled there; the others are shown
	// as registered but unmonitored. Nil: Targets only. The dashboard
	// does not close it.
	Registry registry.Connector
	// Interval is how often the operations ports are polled. Zero:
	// DefaultInterval.
	Interval time.Duration
	// Client makes the requests. Nil: a client whose timeout is the
	// interval.
	Client *http.Client
}

//go:embed web
var web embed.FS

// Dashboard polls a system's operations ports and serves the page and
// its state. It is an http.Handler: / is the page, /state.json the state.
type Dashboard struct {
	opts   Options
	static http.Handler

	mu      sync.Mutex
	members map[string][]registry.Member // by group: the registry's latest snapshot
	state   []byte                       // the latest State as JSON
	poller  *poller
}

// New returns a dashboard that polls once Run is called.
func New(opts Options) (*Dashboard, error) {
	if opts.System == nil {
		return nil, ErrNoSystem
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: opts.Interval}
	}
	sub, err := fs.Sub(web, "web")
	if err != nil {
		return nil, err
	}
	d := &Dashboard{opts: opts, static: http.FileServerFS(sub), members: map[string][]registry.Member{}}
	d.poller = newPoller(opts.System)
	d.state, _ = json.Marshal(d.poller.empty(time.Now()))
	return d, nil
}

// Run watches the registry, if any, and polls every Interval until ctx is
// done; it returns ctx's error, or the error of a watch that could not
// start. Call it once; the page shows no server until it runs.
func (d *Dashboard) Run(ctx context.Context) error {
	if d.opts.Registry != nil {
		for _, g := range d.opts.System.Groups {
			ch, err := d.opts.Registry.Watch(ctx, g.Name)
			if err != nil {
				return err
			}
			go func() {
				for ms := range ch {
					d.mu.Lock()
					d.members[g.Name] = ms
					d.mu.Unlock()
				}
			}()
		}
	}
	tick := time.NewTicker(d.opts.Interval)
	defer tick.Stop()
	for {
		d.pollOnce(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// pollOnce polls every target and stores the new state.
func (d *Dashboard) pollOnce(ctx context.Context) {
	d.mu.Lock()
	var members []registry.Member
	for _, ms := range d.members {
		members = append(members, ms...)
	}
	d.mu.Unlock()
	targets := append([]string(nil), d.opts.Targets...)
	for _, m := range members {
		if u := m.Meta[MetaOps]; u != "" {
			targets = append(targets, u)
		}
	}
	results := fetchAll(ctx, d.opts.Client, dedupe(targets))
	st := d.poller.update(time.Now(), results, members, d.opts.Registry != nil)
	b, err := json.Marshal(st)
	if err != nil {
		return
	}
	d.mu.Lock()
	d.state = b
	d.mu.Unlock()
}

// ServeHTTP serves the page and /state.json.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/state.json" {
		// Embedded files carry no modification time: without this a
		// browser may keep the page of an older binary.
		w.Header().Set("Cache-Control", "no-cache")
		d.static.ServeHTTP(w, r)
		return
	}
	d.mu.Lock()
	b := d.state
	d.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	out := ss[:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
