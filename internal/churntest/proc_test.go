package churntest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
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

// logLine is the part of a JSON log line the tests read.
type logLine struct {
	Time    time.Time `json:"time"`
	Message string    `json:"message"`
	Server  string    `json:"server"`
	Peer    string    `json:"peer"`
	Reason  string    `json:"reason"`
	Detail  string    `json:"detail"`
}

// proc is one `cloudrift run` process.
type proc struct {
	t         *testing.T
	id, group string
	cmd       *exec.Cmd
	done      chan struct{} // closed when it exited and its output is read

	mu     sync.Mutex
	url    string // the game clients' URL it printed (external groups)
	logs   []logLine
	stderr []string
	gone   bool // the test killed it
}

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
	cmd := exec.Command(d.bin, "run", "-config", d.file, "-group", group, "-id", id,
		"-listen", "127.0.0.1:0", "-ops", "off", "-log-json", "-log-level", "info")
	cmd.Env = deploytest.CleanEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, id: id, group: group, cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	listening := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			line := s.Text()
			if i := strings.Index(line, "ws://"); i >= 0 && strings.HasPrefix(line, "game clients: ") {
				p.mu.Lock()
				p.url = line[i:]
				p.mu.Unlock()
			}
			if strings.HasPrefix(line, "operations port") || (group != "front" && strings.Contains(line, " listening on ")) ||
				(group == "front" && strings.HasPrefix(line, "game clients: ")) {
				select {
				case <-listening:
				default:
					close(listening)
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		defer readers.Done()
		s := bufio.NewScanner(stderr)
		s.Buffer(make([]byte, 64<<10), 4<<20)
		for s.Scan() {
			line := s.Text()
			var l logLine
			p.mu.Lock()
			p.stderr = append(p.stderr, line)
			if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &l) == nil {
				p.logs = append(p.logs, l)
			}
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() {
		readers.Wait()
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.cleanup)
	select {
	case <-listening:
	case <-p.done:
		t.Fatalf("%s exited at start:\n%s", id, p.stderrText())
	case <-time.After(testutil.Patience):
		t.Fatalf("%s not listening within %v", id, testutil.Patience)
	}
	d.mu.Lock()
	d.procs = append(d.procs, p)
	d.mu.Unlock()
	return p
}

func (p *proc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.stderr, "\n")
}

// cleanup kills the process, waits for it, and fails the test on a data
// race it reported.
func (p *proc) cleanup() {
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("%s still running 10 s after SIGKILL", p.id)
		return
	}
	all := p.stderrText()
	if i := strings.Index(all, "WARNING: DATA RACE"); i >= 0 {
		p.t.Errorf("%s reported a data race:\n%s", p.id, all[i:min(len(all), i+6000)])
	}
	if p.t.Failed() {
		lines := strings.Split(all, "\n")
		p.t.Logf("--- %s, last lines of stderr ---\n%s", p.id, strings.Join(lines[max(0, len(lines)-30):], "\n"))
	}
}

// signal sends sig to the process.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("%v to %s: %v", sig, p.id, err)
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	p.t.Helper()
	p.mu.Lock()
	p.gone = true
	p.mu.Unlock()
	p.signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(testutil.Patience):
		p.t.Fatalf("%s still running %v after SIGKILL", p.id, testutil.Patience)
	}
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// linkedUp reports whether p logged a link up to peer since its start
// and no link down after it.
func (p *proc) linkedUp(peer string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	up := false
	for _, l := range p.logs {
		if l.Peer != peer {
			continue
		}
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
				if !f.linkedUp(c.id) {
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
		if p.group == group && p.running() {
			out = append(out, p)
		}
	}
	return out
}

// entries returns the running front servers, for the load.
func (d *deployment) entries() []Entry {
	var out []Entry
	for _, p := range d.running("front") {
		p.mu.Lock()
		if p.url != "" {
			out = append(out, Entry{ID: p.id, URL: p.url})
		}
		p.mu.Unlock()
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
		p.mu.Lock()
		gone := p.gone
		logs := append([]logLine(nil), p.logs...)
		p.mu.Unlock()
		if gone || slices.Contains(ok, p.id) {
			continue
		}
		for _, l := range logs {
			if l.Message == "link down" && l.Reason == protocol.ReasonPeerLeft.String() &&
				!l.Time.Before(since) && !slices.Contains(ok, l.Peer) {
				out = append(out, fmt.Sprintf("%s -> %s at %s (%s)", p.id, l.Peer, l.Time.Format("15:04:05.000"), l.Detail))
			}
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
		if d.procs[i].id == id {
			return d.procs[i]
		}
	}
	d.t.Fatalf("no process %s", id)
	return nil
}
