package cloudmemory

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/rendezvous"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testSettings are the cloud plugin's settings in tests: small limits so
// each can be reached, and a short grace.
const testSettings = `
maxUploadBytesPerClient: 1000
maxRowBytes: 400
maxKeysPerQuery: 8
maxBytesPerDownload: 2000
maxSubscriptionsPerClient: 4
serverGrace: 300ms
getTimeout: 1s
opTimeout: 3s
`

// testSystem, with testSettings: game clients on "client" servers, which
// connect to the "world" and "cloud" groups; "world" connects to "cloud".
func testSystem(t *testing.T) *config.System {
	t.Helper()
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(testSettings), &node); err != nil {
		t.Fatal(err)
	}
	sys := &config.System{
		System: "cloudtest",
		Secret: "test-secret-of-sufficient-length",
		Groups: []config.Group{
			{Name: "client", Visibility: config.External, ConnectsTo: []string{"cloud", "world"},
				Clients: config.Clients{Rate: 10000, Burst: 10000}},
			{Name: "world", Visibility: config.Internal, ConnectsTo: []string{"cloud"}},
			{Name: "cloud", Visibility: config.Internal,
				Plugins: []config.Plugin{{Name: Name, Settings: *node.Content[0]}}},
		},
		Links: config.Links{
			Heartbeat:        config.Duration(100 * time.Millisecond),
			Timeout:          config.Duration(1 * time.Second),
			HandshakeTimeout: config.Duration(1 * time.Second),
			BackoffMin:       config.Duration(10 * time.Millisecond),
			BackoffMax:       config.Duration(100 * time.Millisecond),
			LeaveGrace:       config.Duration(200 * time.Millisecond),
		},
	}
	if err := sys.Validate(); err != nil {
		t.Fatal(err)
	}
	return sys
}

// newSystem prepares the test system on the clustertest kit, keeping
// debug logs (printed when the test fails); it starts no server.
func newSystem(t *testing.T) *clustertest.System {
	return clustertest.NewSystem(t, testSystem(t), clustertest.WithLogLevel(zerolog.DebugLevel))
}

// probe is a test plugin: it keeps its Host and its cloud session, and
// records the notifications the session receives.
type probe struct {
	mu    sync.Mutex
	host  plugins.Host
	cm    plugins.CloudMemory
	notes []cloud.Notification
	// filter, when set, is this server's query filter.
	filter func(op *plugins.CloudOp) error
}

func (p *probe) Start(_ context.Context, h plugins.Host) error {
	cm, err := h.CloudMemory()
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.host, p.cm = h, cm
	p.mu.Unlock()
	return nil
}

func (p *probe) CloudNotification(n cloud.Notification) error {
	p.mu.Lock()
	p.notes = append(p.notes, n)
	p.mu.Unlock()
	return nil
}

func (p *probe) FilterCloud(op *plugins.CloudOp) error {
	p.mu.Lock()
	f := p.filter
	p.mu.Unlock()
	if f != nil {
		return f(op)
	}
	return nil
}

func (p *probe) setFilter(f func(op *plugins.CloudOp) error) {
	p.mu.Lock()
	p.filter = f
	p.mu.Unlock()
}

func (p *probe) notifications() []cloud.Notification {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.notes)
}

// changes returns the notifications but Resyncs (snapshots).
func (p *probe) changes() []cloud.Notification {
	var out []cloud.Notification
	for _, n := range p.notifications() {
		if n.Type != cloud.NotifyResync {
			out = append(out, n)
		}
	}
	return out
}

// caller returns the cloud-memory caller behind the probe's session.
func (p *probe) caller() *Caller {
	return p.cm.(interface{ Unwrap() plugins.CloudMemory }).Unwrap().(*session).c
}

// linked reports whether the probe's server sees n replicas, all linked.
func (p *probe) linked(n int) func() bool {
	return func() bool {
		c := p.caller()
		c.mu.Lock()
		defer c.mu.Unlock()
		linked := 0
		for _, rep := range c.replicas {
			if rep.linked {
				linked++
			}
		}
		return linked == n && len(c.replicas) == n
	}
}

// settled reports whether the probe's client has nothing left to place.
func (p *probe) settled() bool {
	c := p.caller()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.unplaced) > 0 || len(c.resync) > 0 {
		return false
	}
	for _, r := range c.rows {
		if r.sending != 0 || r.placed.gen == 0 {
			return false
		}
	}
	for _, ks := range c.subs {
		if ks.resyncReq != 0 || ks.placed.gen == 0 {
			return false
		}
		for _, e := range ks.entries {
			if e.state != entryActive {
				return false
			}
		}
	}
	for _, rep := range c.replicas {
		if rep.session != nil || (rep.linked && rep.confirmed != c.digest) {
			return false
		}
	}
	return true
}

// describeRows prints rows as "key uploader=data" in their order.
func describeRows(rows []cloud.Row) string {
	var parts []string
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%s %s=%s", r.Key, r.Uploader, r.Data))
	}
	return strings.Join(parts, ", ")
}

// view applies notifications to a map of rows, the way a subscriber keeps
// its state: key → uploader → data.
type view map[key]map[ref]string

func (v view) apply(n cloud.Notification) {
	switch n.Type {
	case cloud.NotifyUpdated:
		if v[n.Key] == nil {
			v[n.Key] = make(map[ref]string)
		}
		v[n.Key][n.Row.Uploader] = string(n.Row.Data)
	case cloud.NotifyDeleted:
		delete(v[n.Key], n.Row.Uploader)
	case cloud.NotifyResync:
		v[n.Key] = make(map[ref]string)
		for _, r := range n.Rows {
			v[n.Key][r.Uploader] = string(r.Data)
		}
	}
}

func (v view) load(rows []cloud.Row) {
	for _, r := range rows {
		if v[r.Key] == nil {
			v[r.Key] = make(map[ref]string)
		}
		v[r.Key][r.Uploader] = string(r.Data)
	}
}

func (v view) String() string {
	var parts []string
	for k, rows := range v {
		for u, d := range rows {
			parts = append(parts, fmt.Sprintf("%s %s=%s", k, u, d))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func (v view) clone() view {
	c := make(view, len(v))
	for k, rows := range v {
		c[k] = make(map[ref]string, len(rows))
		for u, d := range rows {
			c[k][u] = d
		}
	}
	return c
}

// busiestReplica returns which of the test system's three replicas owns
// the most of keys: the one whose death moves the most.
func busiestReplica(keys []key) string {
	r := rendezvous.NewRing([]string{"cloud-1", "cloud-2", "cloud-3"})
	per := map[string]int{}
	for _, k := range keys {
		per[ownerOf(r, k)]++
	}
	victim := "cloud-1"
	for id, n := range per {
		if n > per[victim] {
			victim = id
		}
	}
	return victim
}
