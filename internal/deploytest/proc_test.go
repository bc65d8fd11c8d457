package deploytest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/cloudrift/cloudrift/internal/consultest"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/registry/consul"
)

// wait bounds every wait of these tests. It is a failure deadline, not an
// expected duration.
const wait = testutil.Patience

// Timings of the test system (see system).
const (
	ttl        = 2 * time.Second // registry.consul.ttl
	leaveGrace = 5 * time.Second // links.leaveGrace: the default
)

// system returns the text of the test system file for a Consul agent at
// addr; token, when not empty, goes into the registry block.
func system(addr, token string) string {
	tok := ""
	if token != "" {
		tok = "\n    token: " + token
	}
	// Heartbeats are short so a dead link would show quickly; the timeout
	// leaves room for a loaded machine (two cores, -race), since these
	// tests assert that no link drops.
	return fmt.Sprintf(`system: deploytest
secret: deploytest-secret-0123456789
registry:
  type: consul
  settings:
    address: %s
    ttl: %s%s
links:
  heartbeat: 250ms
  timeout: 3s
  backoffMin: 50ms
  backoffMax: 500ms
  leaveGrace: %s
%s`, addr, ttl, tok, leaveGrace, Groups)
}

// proc and logLine are the shared process runner's (process.go).
type (
	proc    = Proc
	logLine = LogLine
)

// deployment is the set of processes of one test, all on one agent.
type deployment struct {
	t     *testing.T
	agent *consultest.Agent
	file  string
	procs []*proc
	reg   *consul.Connector // reads what Consul sees
}

// newDeployment writes the system file for agent and opens a connector
// for reading Consul's view. token goes into the file when not empty.
func newDeployment(t *testing.T, agent *consultest.Agent, token string) *deployment {
	t.Helper()
	if binary == "" {
		t.Fatal("deploytest: no cloudrift binary (TestMain did not build it)")
	}
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(system(agent.Addr(), token)), 0o600); err != nil {
		t.Fatal(err)
	}
	reg, err := consul.New(consul.Config{System: "deploytest", Address: agent.Addr(), Token: agent.Token()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return &deployment{t: t, agent: agent, file: file, reg: reg}
}

// start launches "cloudrift run" for server id of group, listening on a
// free loopback port, with env added to a clean environment (no CONSUL_*
// or CLOUDRIFT_* from the test's own). The process is killed when the
// test ends.
func (d *deployment) start(group, id string, env ...string) *proc {
	d.t.Helper()
	p := startProc(d.t, group, id, d.file, "127.0.0.1:0", env...)
	d.procs = append(d.procs, p)
	return p
}

func startProc(t *testing.T, group, id, file, listen string, env ...string) *proc {
	t.Helper()
	return StartRun(t, binary, RunArgs{Group: group, ID: id, File: file, Listen: listen, Env: env})
}

func linkUp(peer string) func(logLine) bool {
	return func(l logLine) bool { return l.Message == "link up" && l.Peer == peer }
}

func linkDown(peer string) func(logLine) bool {
	return func(l logLine) bool { return l.Message == "link down" && (peer == "" || l.Peer == peer) }
}

// waitFor polls cond every 10 ms until it holds, failing the test after
// wait or when one of the deployment's live processes exits.
func (d *deployment) waitFor(what string, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		if cond() {
			return
		}
		for _, p := range d.procs {
			p.mu.Lock()
			killed := !p.killed.IsZero()
			p.mu.Unlock()
			if ended, err := p.Exited(); ended && !killed {
				d.t.Fatalf("waiting for %s: %s exited (%v)", what, p.ID, err)
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: not within %v", what, wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// peersOf returns the live processes that link with p: every server of
// the groups p's group links with.
func (d *deployment) peersOf(p *proc) []*proc {
	var out []*proc
	for _, q := range d.procs {
		if q != p && q.Running() && contains(Peers(p.Group), q.Group) {
			out = append(out, q)
		}
	}
	return out
}

// linkedBy waits until every peer of p has logged a link up to it since
// from, and returns the time of the last one.
func (d *deployment) linkedBy(p *proc, from time.Time) time.Time {
	d.t.Helper()
	ps := d.peersOf(p)
	if len(ps) == 0 {
		d.t.Fatalf("%s has no peers: the test checks nothing", p.ID)
	}
	var last time.Time
	d.waitFor("every peer linked to "+p.ID, func() bool {
		last = time.Time{}
		for _, q := range ps {
			l, ok := q.Find(from, linkUp(p.ID))
			if !ok {
				return false
			}
			if l.Time.After(last) {
				last = l.Time
			}
		}
		return true
	})
	return last
}

// mesh waits until every live process has been linked by every peer.
func (d *deployment) mesh() {
	d.t.Helper()
	for _, p := range d.procs {
		if p.Running() {
			d.linkedBy(p, p.started)
		}
	}
}

// linkDowns returns every "link down" a live process logged since from,
// formatted for a message.
func (d *deployment) linkDowns(from time.Time) []string {
	var out []string
	for _, p := range d.procs {
		if !p.Running() {
			continue
		}
		for _, l := range p.Logs(from, linkDown("")) {
			out = append(out, fmt.Sprintf("%s: link down to %s at %s (reason %q, %s)",
				p.ID, l.Peer, l.Time.Format("15:04:05.000"), l.Reason, l.Detail))
		}
	}
	return out
}

// health returns what Consul reports of the members of group, by ID; nil
// when Consul does not answer.
func (d *deployment) health(group string) map[string]consul.MemberHealth {
	ctx, cancel := context.WithTimeout(d.t.Context(), 2*time.Second)
	defer cancel()
	hs, err := d.reg.Health(ctx, group)
	if err != nil {
		return nil
	}
	out := make(map[string]consul.MemberHealth, len(hs))
	for _, h := range hs {
		out[h.ID] = h
	}
	return out
}

// allPassing reports whether Consul lists every live process as passing,
// with the incarnation it runs.
func (d *deployment) allPassing() bool {
	byGroup := make(map[string]map[string]consul.MemberHealth)
	for _, p := range d.procs {
		if !p.Running() {
			continue
		}
		hs, ok := byGroup[p.Group]
		if !ok {
			hs = d.health(p.Group)
			byGroup[p.Group] = hs
		}
		if h, ok := hs[p.ID]; !ok || h.Status != api.HealthPassing {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ms formats a duration in milliseconds for the logs.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
