package deploytest

import (
	"bufio"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/internal/testutil"
)

// LogLine is one JSON log line of a `cloudrift run -log-json` process: the
// fields the tests read.
type LogLine struct {
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

// RunArgs says how to start one `cloudrift run` process.
type RunArgs struct {
	Group, ID string
	File      string   // the system file
	Listen    string   // host:port; empty means 127.0.0.1:0
	Args      []string // more flags, after the standard ones
	Env       []string // added to CleanEnv()
}

// Proc is one `cloudrift run` process of a test, started with JSON logs
// at level info. It keeps every line the process writes (stderr's JSON
// lines also decoded), and when the test ends it is killed, waited for,
// and checked: a data race it reported fails the test, and a failed test
// gets its last lines of stderr.
type Proc struct {
	ID, Group string

	t       *testing.T
	cmd     *exec.Cmd
	started time.Time     // just before the process started
	done    chan struct{} // closed when the process has exited and its output is read

	mu     sync.Mutex
	logs   []LogLine // JSON lines of stderr, in order
	stderr []string  // every line of stderr
	stdout []string
	exit   error // set before done is closed
	killed time.Time
}

// StartRun launches `bin run` for a.Group and a.ID. It returns once the
// process started; what it prints arrives in the background.
func StartRun(t *testing.T, bin string, a RunArgs) *Proc {
	t.Helper()
	listen := a.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	args := append([]string{"run", "-config", a.File, "-group", a.Group, "-id", a.ID,
		"-listen", listen, "-log-json", "-log-level", "info"}, a.Args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(CleanEnv(), a.Env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{ID: a.ID, Group: a.Group, t: t, cmd: cmd, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", a.ID, err)
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
	t.Cleanup(p.cleanup)
	return p
}

func (p *Proc) read(r io.Reader, isStderr bool) {
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
			var l LogLine
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
func (p *Proc) cleanup() {
	p.t.Helper()
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("%s: still running 10 s after SIGKILL", p.ID)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	all := strings.Join(p.stderr, "\n")
	if i := strings.Index(all, "WARNING: DATA RACE"); i >= 0 {
		p.t.Errorf("%s reported a data race:\n%s", p.ID, all[i:min(len(all), i+6000)])
	}
	if p.t.Failed() {
		from := max(0, len(p.stderr)-40)
		p.t.Logf("--- %s (%s), last %d lines of stderr ---\n%s", p.ID, p.Group, len(p.stderr)-from, strings.Join(p.stderr[from:], "\n"))
	}
}

// Done is closed once the process has exited and its output is read.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Started is when the process was started.
func (p *Proc) Started() time.Time { return p.started }

// Signal sends sig to the process, failing the test when it cannot.
func (p *Proc) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("%v to %s: %v", sig, p.ID, err)
	}
}

// Kill sends SIGKILL, waits until the process is gone and returns when it
// was sent.
func (p *Proc) Kill() time.Time {
	p.t.Helper()
	at := time.Now()
	p.mu.Lock()
	p.killed = at
	p.mu.Unlock()
	p.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(testutil.Patience):
		p.t.Fatalf("%s still running %v after SIGKILL", p.ID, testutil.Patience)
	}
	return at
}

// Killed returns when Kill sent SIGKILL, or zero.
func (p *Proc) Killed() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.killed
}

// Exited reports whether the process has ended, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.exit
	default:
		return false, nil
	}
}

// Running reports whether the process has not ended.
func (p *Proc) Running() bool {
	ended, _ := p.Exited()
	return !ended
}

// WaitExit waits until the process exits and returns its stderr and exit
// error.
func (p *Proc) WaitExit() (string, error) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(testutil.Patience):
		p.t.Fatalf("%s still running after %v; stderr:\n%s", p.ID, testutil.Patience, p.StderrText())
	}
	_, err := p.Exited()
	return p.StderrText(), err
}

// Find returns the first log line since from that match accepts.
func (p *Proc) Find(from time.Time, match func(LogLine) bool) (LogLine, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.logs {
		if !l.Time.Before(from) && match(l) {
			return l, true
		}
	}
	return LogLine{}, false
}

// Logs returns every log line since from that match accepts.
func (p *Proc) Logs(from time.Time, match func(LogLine) bool) []LogLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []LogLine
	for _, l := range p.logs {
		if !l.Time.Before(from) && match(l) {
			out = append(out, l)
		}
	}
	return out
}

// Stdout returns the lines the process wrote to stdout so far.
func (p *Proc) Stdout() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.stdout...)
}

// StderrText returns everything the process wrote to stderr so far.
func (p *Proc) StderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.stderr, "\n")
}
