package churntest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/internal/deploytest"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/protocol"
)

// processSystem is the system file of the process tests for a Consul
// HTTP API at addr: the topology of inProcessSystem, discovered through
// Consul, with the links' default leaveGrace.
func processSystem(addr string) string {
	return fmt.Sprintf(`system: churn
secret: churn-secret-of-sufficient-length
registry:
  type: consul
  settings:
    address: %s
    ttl: 2s
links:
  heartbeat: 250ms
  timeout: 3s
  backoffMin: 50ms
  backoffMax: 500ms
groups:
  - name: front
    visibility: external
    connectsTo: [cloud]
    clients: {path: /, rate: 1000}
  - name: cloud
    visibility: internal
    plugins:
      - name: cloudmemory
        settings: {serverGrace: 1s} # getTimeout: the default, 2s
`, addr)
}

// proc is one `cloudrift run` process, on the shared runner.
type proc = deploytest.Proc

// deployment is the processes of one test, sharing one system file.
type deployment struct {
	t     *testing.T
	bin   string
	file  string
	mu    sync.Mutex
	procs []*proc
}

func newDeployment(t *testing.T, consulAddr string) *deployment {
	t.Helper()
	bin := cloudrift(t)
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(processSystem(consulAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	return &deployment{t: t, bin: bin, file: file}
}

// start runs server id of group and waits until it listens (and, for an
// external server, printed its clients' URL).
func (d *deployment) start(group, id string) *proc {
	t := d.t
	t.Helper()
	p := deploytest.StartRun(t, d.bin, deploytest.RunArgs{Group: group, ID: id, File: d.file, Args: []string{"-ops", "off"}})
	deadline := time.Now().Add(testutil.Patience)
	for !listening(p) {
		if !p.Running() {
			t.Fatalf("%s exited at start:\n%s", id, p.StderrText())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening within %v", id, testutil.Patience)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.mu.Lock()
	d.procs = append(d.procs, p)
	d.mu.Unlock()
	return p
}

// listening reports whether p said it listens: an external server once it
// printed its clients' URL.
func listening(p *proc) bool {
	if p.Group == "front" {
		return clientURL(p) != ""
	}
	return slices.ContainsFunc(p.Stdout(), func(l string) bool { return strings.Contains(l, " listening on ") })
}

// clientURL returns the game clients' URL p printed, or "".
func clientURL(p *proc) string {
	for _, l := range p.Stdout() {
		if i := strings.Index(l, "ws://"); i >= 0 && strings.HasPrefix(l, "game clients: ") {
			return l[i:]
		}
	}
	return ""
}

// linkedUp reports whether p logged a link up to peer since its start
// and no link down after it.
func linkedUp(p *proc, peer string) bool {
	up := false
	for _, l := range p.Logs(time.Time{}, func(l deploytest.LogLine) bool { return l.Peer == peer }) {
		switch l.Message {
		case "link up":
			up = true
		case "link down":
			up = false
		}
	}
	return up
}

// waitMesh waits until every running front server is linked to every
// running cloud replica.
func (d *deployment) waitMesh() {
	d.t.Helper()
	testutil.WaitFor(d.t, "every front server linked to every cloud replica", func() bool {
		for _, f := range d.running("front") {
			for _, c := range d.running("cloud") {
				if !linkedUp(f, c.ID) {
					return false
				}
			}
		}
		return true
	})
}

func (d *deployment) running(group string) []*proc {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*proc
	for _, p := range d.procs {
		if p.Group == group && p.Running() {
			out = append(out, p)
		}
	}
	return out
}

// entries returns the running front servers, for the load.
func (d *deployment) entries() []Entry {
	var out []Entry
	for _, p := range d.running("front") {
		if u := clientURL(p); u != "" {
			out = append(out, Entry{ID: p.ID, URL: u})
		}
	}
	return out
}

// peerLeftClosures returns the links a running process closed since
// since because the registry stopped listing the peer, but for links to
// the servers in ok.
func (d *deployment) peerLeftClosures(since time.Time, ok []string) []string {
	d.mu.Lock()
	procs := append([]*proc(nil), d.procs...)
	d.mu.Unlock()
	var out []string
	for _, p := range procs {
		if !p.Killed().IsZero() || slices.Contains(ok, p.ID) {
			continue
		}
		for _, l := range p.Logs(since, func(l deploytest.LogLine) bool {
			return l.Message == "link down" && l.Reason == protocol.ReasonPeerLeft.String() && !slices.Contains(ok, l.Peer)
		}) {
			out = append(out, fmt.Sprintf("%s -> %s at %s (%s)", p.ID, l.Peer, l.Time.Format("15:04:05.000"), l.Detail))
		}
	}
	return out
}

// standard starts the processes every process test runs: two front
// servers and three cloud replicas, linked, with a load of cfg ready to
// start.
func (d *deployment) standard(cfg LoadConfig) (*Checker, *Load) {
	d.t.Helper()
	for _, id := range replicas3 {
		d.start("cloud", id)
	}
	d.start("front", "front-1")
	d.start("front", "front-2")
	d.waitMesh()
	check := NewChecker()
	return check, NewLoad(cfg, check, d.entries)
}

func (d *deployment) run(check *Checker, load *Load, sc scenario, peerLeftOK ...string) {
	d.t.Helper()
	runScenario(d.t, "processes", load, check, sc, func(since time.Time) []string {
		return d.peerLeftClosures(since, peerLeftOK)
	})
}

// byID returns the process started last under id.
func (d *deployment) byID(id string) *proc {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.procs) - 1; i >= 0; i-- {
		if d.procs[i].ID == id {
			return d.procs[i]
		}
	}
	d.t.Fatalf("no process %s", id)
	return nil
}
