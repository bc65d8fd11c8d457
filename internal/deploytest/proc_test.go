package deploytest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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

// logLine is one JSON log line of a "cloudrift run -log-json" process.
type logLine struct {
	Time      time.Time `json:"time"`
	Level     string    `json:"level"`
	Message   string    `json:"message"`
	Server    string    `json:"server"`
	Peer      string    `json:"peer"`
	PeerGroup string    `json:"peer_group"`
	Direction string    `json:"direction"`
	Reason    string    `json:"reason"`
	Detail    string    `json:"detail"`
	Error     string    `json:"error"`
	Attempt   int       `json:"attempt"`
	RetryIn   float64   `json:"retry_in"` // milliseconds
}

// proc is one "cloudrift run" process.
type proc struct {
	t       *testing.T
	id      string
	group   string
	cmd     *exec.Cmd
	started time.Time     // just before the process started
	done    chan struct{} // closed when the process has exited and its output is read

	mu     sync.Mutex
	logs   []logLine // JSON lines of stderr, in order
	stderr []string  // every line of stderr
	stdout []string
	exit   error // set before done is closed
	killed time.Time
}

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
	cmd := exec.Command(binary, "run", "-config", file, "-group", group, "-id", id,
		"-listen", listen, "-log-json", "-log-level", "info")
	cmd.Env = append(CleanEnv(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, id: id, group: group, cmd: cmd, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); p.read(stdout, false) }()
	go func() { defer readers.Done(); p.read(stderr, true) }()
	go func() {
		readers.Wait() // Wait closes the pipes: read them to the end first
		err := cmd.Wait()
		p.mu.Lock()
		p.exit = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() { p.cleanup() })
	return p
}

func (p *proc) read(r io.Reader, isStderr bool) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), 4<<20)
	for s.Scan() {
		line := s.Text()
		p.mu.Lock()
		if !isStderr {
			p.stdout = append(p.stdout, line)
			p.mu.Unlock()
			continue
		}
		p.stderr = append(p.stderr, line)
		if strings.HasPrefix(line, "{") {
			var l logLine
			if json.Unmarshal([]byte(line), &l) == nil {
				p.logs = append(p.logs, l)
			}
		}
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

// cleanup kills the process if it still runs, waits for it, fails the
// test on a data race it reported, and prints its last lines when the
// test failed.
func (p *proc) cleanup() {
	p.t.Helper()
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("%s: still running 10 s after SIGKILL", p.id)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	all := strings.Join(p.stderr, "\n")
	if i := strings.Index(all, "WARNING: DATA RACE"); i >= 0 {
		p.t.Errorf("%s reported a data race:\n%s", p.id, all[i:min(len(all), i+6000)])
	}
	if p.t.Failed() {
		from := max(0, len(p.stderr)-40)
		p.t.Logf("--- %s (%s), last %d lines of stderr ---\n%s", p.id, p.group, len(p.stderr)-from, strings.Join(p.stderr[from:], "\n"))
	}
}

// kill sends SIGKILL, waits until the process is gone and returns when it
// was sent.
func (p *proc) kill() time.Time {
	p.t.Helper()
	at := time.Now()
	p.mu.Lock()
	p.killed = at
	p.mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("kill %s: %v", p.id, err)
	}
	select {
	case <-p.done:
	case <-time.After(wait):
		p.t.Fatalf("%s still running %v after SIGKILL", p.id, wait)
	}
	return at
}

// exited reports whether the process has ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.exit
	default:
		return false, nil
	}
}

// alive reports whether the process runs and was not killed by the test.
func (p *proc) alive() bool {
	ended, _ := p.exited()
	return !ended
}

// find returns the first log line since from that match accepts.
func (p *proc) find(from time.Time, match func(logLine) bool) (logLine, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.logs {
		if !l.Time.Before(from) && match(l) {
			return l, true
		}
	}
	return logLine{}, false
}

// all returns every log line since from that match accepts.
func (p *proc) all(from time.Time, match func(logLine) bool) []logLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []logLine
	for _, l := range p.logs {
		if !l.Time.Before(from) && match(l) {
			out = append(out, l)
		}
	}
	return out
}

// stderrText returns everything the process wrote to stderr so far.
func (p *proc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.stderr, "\n")
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
			if ended, err := p.exited(); ended && !killed {
				d.t.Fatalf("waiting for %s: %s exited (%v)", what, p.id, err)
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
		if q != p && q.alive() && contains(Peers(p.group), q.group) {
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
		d.t.Fatalf("%s has no peers: the test checks nothing", p.id)
	}
	var last time.Time
	d.waitFor("every peer linked to "+p.id, func() bool {
		last = time.Time{}
		for _, q := range ps {
			l, ok := q.find(from, linkUp(p.id))
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
		if p.alive() {
			d.linkedBy(p, p.started)
		}
	}
}

// linkDowns returns every "link down" a live process logged since from,
// formatted for a message.
func (d *deployment) linkDowns(from time.Time) []string {
	var out []string
	for _, p := range d.procs {
		if !p.alive() {
			continue
		}
		for _, l := range p.all(from, linkDown("")) {
			out = append(out, fmt.Sprintf("%s: link down to %s at %s (reason %q, %s)",
				p.id, l.Peer, l.Time.Format("15:04:05.000"), l.Reason, l.Detail))
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
		if !p.alive() {
			continue
		}
		hs, ok := byGroup[p.group]
		if !ok {
			hs = d.health(p.group)
			byGroup[p.group] = hs
		}
		if h, ok := hs[p.id]; !ok || h.Status != api.HealthPassing {
			return false
		}
	}
	return true
}

// waitExit waits until p exits and returns its stderr and exit error.
func (p *proc) waitExit() (string, error) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(wait):
		p.t.Fatalf("%s still running after %v; stderr:\n%s", p.id, wait, p.stderrText())
	}
	_, err := p.exited()
	return p.stderrText(), err
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
