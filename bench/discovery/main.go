// Command discovery measures discovery through a real Consul agent, with
// every cloudrift server a separate process:
//
//	go -C bench run ./discovery [-n 20] [-ttl 2s] [-timeout 5m]
//
// It builds cmd/cloudrift, starts a `consul agent -dev` on free loopback
// ports (the binary of internal/consultest: $CLOUDRIFT_CONSUL, .bin/consul
// or consul on PATH), and runs a small system: front (external, 2 replicas)
// → mid (internal, 1 replica) → back (internal, 2 replicas). Each of n
// trials starts one more mid replica, which 4 peers link with (both fronts
// dial it, it dials both backs), then kills it with SIGKILL, and measures:
//
//   - start → linked: from just before the process starts until the last
//     of its peers logs "link up" for it (with, for reference, the part
//     until the new server logs "server starting": process start, system
//     file, listener);
//   - SIGKILL → dropped: from the kill until the last peer logs "link down";
//   - SIGKILL → critical: from the kill until the agent holding the
//     registration reports its check critical (/v1/agent/checks, polled
//     every 5 ms), and until the catalog, which health queries and so
//     every watch read, no longer reports it passing (followed with
//     blocking queries). The agent syncs the change to the catalog at
//     once; the gap between the two is that sync.
//
// Each kill comes after a random pause of up to one TTL, so it lands at a
// random point of the server's heartbeat cycle. Event times come from the
// servers' JSON logs (run -log-json), on the same clock as the bench. It
// prints p50, p99 and max of each beside its target (see the targets
// below). Every wait is bounded (20 s), and the whole run by -timeout.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/cloudrift/cloudrift/internal/consultest"
	"github.com/cloudrift/cloudrift/internal/deploytest"
)

// waitBound bounds every single wait of the bench.
const waitBound = 20 * time.Second

// Targets: a new replica is linked by every peer within half a second
// (p99), a killed one is dropped by every peer within 100 ms (the TCP reset,
// not the registry, tells them), and the registry reports it critical within
// its TTL.
const (
	targetLinked   = 500 * time.Millisecond // p99, start → linked by every peer
	targetDropped  = 100 * time.Millisecond // SIGKILL → dropped by every peer
	targetCritical = 5 * time.Second        // SIGKILL → critical: at most the TTL, 5 s or less
)

func main() {
	n := flag.Int("n", 20, "number of trials (1 to 1000)")
	ttl := flag.Duration("ttl", 2*time.Second, "the Consul check TTL of the servers (at least 1s)")
	timeout := flag.Duration("timeout", 5*time.Minute, "bound on the whole run")
	flag.Parse()
	if *n < 1 || *n > 1000 || *ttl < time.Second || *timeout <= 0 {
		fmt.Fprintln(os.Stderr, "discovery: want 1 <= -n <= 1000, -ttl >= 1s and a positive -timeout")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	err := run(ctx, *n, *ttl)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "discovery:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n int, ttl time.Duration) error {
	dir, err := os.MkdirTemp("", "bench-discovery-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	bin, err := deploytest.Build(dir, false)
	if err != nil {
		return err
	}
	agent, err := startAgent(ctx, dir)
	if err != nil {
		return err
	}
	defer agent.Stop()

	file := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(file, []byte(systemFile(agent.Addr(), ttl)), 0o600); err != nil {
		return err
	}
	b := &bench{ctx: ctx, bin: bin, file: file, dir: dir}
	defer b.killAll()
	for _, s := range []struct{ group, id string }{
		{"back", "back-1"}, {"back", "back-2"}, {"mid", "mid-1"}, {"front", "front-1"}, {"front", "front-2"},
	} {
		if _, err := b.start(s.group, s.id); err != nil {
			return err
		}
	}
	for _, p := range b.procs {
		if _, err := b.linkedBy(p, p.started); err != nil {
			return fmt.Errorf("initial mesh: %w", err)
		}
	}
	client, err := agent.API()
	if err != nil {
		return err
	}

	var booted, linked, dropped, critical, agentCritical []time.Duration
	fmt.Fprintf(os.Stderr, "discovery: %d trials", n)
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("mid-t%d", i)
		p, err := b.start("mid", id)
		if err != nil {
			return err
		}
		peers := b.peersOf(p)
		last, err := b.linkedBy(p, p.started)
		if err != nil {
			return fmt.Errorf("trial %d: %w", i, err)
		}
		linked = append(linked, last.Sub(p.started))
		if l, ok := p.find(p.started, "server starting", ""); ok {
			booted = append(booted, l.Time.Sub(p.started))
		}
		if err := b.waitFor(id+" passing in Consul", func() bool { return status(client, id) == api.HealthPassing }); err != nil {
			return fmt.Errorf("trial %d: %w", i, err)
		}

		// Crash at a random point of the heartbeat cycle, not right
		// after the registration (which would always measure the worst
		// case, a whole TTL).
		select {
		case <-time.After(rand.N(ttl)):
		case <-ctx.Done():
			return ctx.Err()
		}
		killed, err := p.kill()
		if err != nil {
			return fmt.Errorf("trial %d: %w", i, err)
		}
		var lastDown time.Time
		err = b.waitFor("every peer dropped "+id, func() bool {
			lastDown = time.Time{}
			for _, q := range peers {
				l, ok := q.find(killed, "link down", id)
				if !ok {
					return false
				}
				lastDown = latest(lastDown, l.Time)
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("trial %d: %w", i, err)
		}
		dropped = append(dropped, lastDown.Sub(killed))
		agentCrit := make(chan time.Time, 1)
		go func() { agentCrit <- untilAgentCritical(ctx, client, id) }()
		crit, err := untilNotPassing(ctx, client, id)
		ac := <-agentCrit
		if err != nil {
			return fmt.Errorf("trial %d: %w", i, err)
		}
		if ac.IsZero() {
			return fmt.Errorf("trial %d: the agent never reported %s's check critical", i, id)
		}
		critical = append(critical, crit.Sub(killed))
		agentCritical = append(agentCritical, ac.Sub(killed))
		// Forget the dead replica, as Consul would DeregisterAfter later.
		_ = client.Agent().ServiceDeregister("bench:" + id)
		fmt.Fprint(os.Stderr, ".")
	}
	fmt.Fprintln(os.Stderr)

	fmt.Printf("discovery through Consul (%s dev agent, check TTL %v), every server a separate process on loopback\n", agent.version, ttl)
	fmt.Printf("system: front ×2 (external) → mid (internal) → back ×2; each trial starts one more mid replica (4 peers) and SIGKILLs it\n")
	fmt.Printf("%d trials; %s/%s, %d CPUs, %s; event times from the servers' JSON logs\n\n", n, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	fmt.Printf("%-34s %10s %10s %10s   %s\n", "measure", "p50", "p99", "max", "target")
	row := func(name string, d []time.Duration, target time.Duration, targetText string) {
		p99 := percentile(d, 0.99)
		verdict := "met"
		if p99 > target {
			verdict = "MISSED"
		}
		fmt.Printf("%-34s %10s %10s %10s   %s: %s\n", name, msText(percentile(d, 0.5)), msText(p99), msText(slices.Max(d)), targetText, verdict)
	}
	row("start → linked by every peer", linked, targetLinked, "p99 under 500 ms")
	if len(booted) == len(linked) {
		fmt.Printf("%-34s %10s %10s %10s   %s\n", "  of which start → listening", msText(percentile(booted, 0.5)),
			msText(percentile(booted, 0.99)), msText(slices.Max(booted)), "(process start, config, listener; for reference)")
	}
	row("SIGKILL → dropped by every peer", dropped, targetDropped, "under 100 ms")
	critTarget := min(ttl, targetCritical)
	row("SIGKILL → critical, agent's check", agentCritical, critTarget, "at most the TTL ("+critTarget.String()+")")
	row("SIGKILL → critical, catalog", critical, critTarget, "at most the TTL ("+critTarget.String()+")")
	if n <= 100 {
		fmt.Printf("\n(p99 is the nearest rank: with %d trials, the slowest one)\n", n)
	}
	return nil
}

// systemFile is the bench's system on the agent at addr.
func systemFile(addr string, ttl time.Duration) string {
	return fmt.Sprintf(`system: bench
secret: bench-secret-0123456789abcdef
registry:
  type: consul
  settings:
    address: %s
    ttl: %s
links:
  backoffMin: 50ms
  backoffMax: 500ms
%s`, addr, ttl, deploytest.Groups)
}

// status is the aggregated health of mid replica id in Consul, "" when
// Consul does not list it or does not answer.
func status(c *api.Client, id string) string {
	entries, _, err := c.Health().Service("cloudrift-bench-mid", "", false, nil)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if e.Service != nil && e.Service.ID == "bench:"+id {
			return e.Checks.AggregatedStatus()
		}
	}
	return ""
}

// untilAgentCritical polls the agent's own view of replica id's check
// every 5 ms and returns when it first saw it critical; zero after
// waitBound.
func untilAgentCritical(ctx context.Context, c *api.Client, id string) time.Time {
	ctx, cancel := context.WithTimeout(ctx, waitBound)
	defer cancel()
	for ctx.Err() == nil {
		checks, err := c.Agent().Checks()
		now := time.Now()
		if err == nil {
			if ch := checks["service:bench:"+id]; ch != nil && ch.Status == api.HealthCritical {
				return now
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Time{}
}

// untilNotPassing follows the health of mid replica id with blocking
// queries (each answers as soon as Consul's catalog changes) and returns
// when it first saw it not passing.
func untilNotPassing(ctx context.Context, c *api.Client, id string) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, waitBound)
	defer cancel()
	var index uint64
	for ctx.Err() == nil {
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: time.Second}).WithContext(ctx)
		entries, meta, err := c.Health().Service("cloudrift-bench-mid", "", false, q)
		now := time.Now()
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for _, e := range entries {
			if e.Service != nil && e.Service.ID == "bench:"+id && e.Checks.AggregatedStatus() != api.HealthPassing {
				return now, nil
			}
		}
		index = max(meta.LastIndex, 1)
	}
	return time.Time{}, fmt.Errorf("Consul still lists %s as passing after %v", id, waitBound)
}

// bench holds the processes of one run.
type bench struct {
	ctx   context.Context
	bin   string
	file  string
	dir   string
	procs []*proc
}

// logLine is what the bench reads of a server's JSON log line.
type logLine struct {
	Time    time.Time `json:"time"`
	Message string    `json:"message"`
	Peer    string    `json:"peer"`
}

// proc is one "cloudrift run" process.
type proc struct {
	id, group string
	cmd       *exec.Cmd
	started   time.Time
	done      chan struct{}
	logPath   string

	mu     sync.Mutex
	logs   []logLine
	killed bool
}

// start launches one server; its stderr also goes to a file in the bench's
// directory, for a failure message.
func (b *bench) start(group, id string) (*proc, error) {
	cmd := exec.Command(b.bin, "run", "-config", b.file, "-group", group, "-id", id,
		"-listen", "127.0.0.1:0", "-log-json", "-log-level", "info")
	cmd.Env = deploytest.CleanEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p := &proc{id: id, group: group, cmd: cmd, done: make(chan struct{}), logPath: filepath.Join(b.dir, id+".log")}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", id, err)
	}
	go func() {
		s := bufio.NewScanner(io.TeeReader(stderr, logFile))
		s.Buffer(make([]byte, 64<<10), 4<<20)
		for s.Scan() {
			var l logLine
			if json.Unmarshal(s.Bytes(), &l) == nil && (l.Message == "link up" || l.Message == "link down" || l.Message == "server starting") {
				p.mu.Lock()
				p.logs = append(p.logs, l)
				p.mu.Unlock()
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	b.procs = append(b.procs, p)
	return p, nil
}

func (p *proc) alive() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.killed {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to end; it returns when the
// signal was sent.
func (p *proc) kill() (time.Time, error) {
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	at := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return at, fmt.Errorf("kill %s: %w", p.id, err)
	}
	select {
	case <-p.done:
		return at, nil
	case <-time.After(waitBound):
		return at, fmt.Errorf("%s still running %v after SIGKILL", p.id, waitBound)
	}
}

// find returns the first line since from with message msg about peer.
func (p *proc) find(from time.Time, msg, peer string) (logLine, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.logs {
		if !l.Time.Before(from) && l.Message == msg && l.Peer == peer {
			return l, true
		}
	}
	return logLine{}, false
}

func (b *bench) peersOf(p *proc) []*proc {
	var out []*proc
	for _, q := range b.procs {
		if q != p && q.alive() && slices.Contains(deploytest.Peers(p.group), q.group) {
			out = append(out, q)
		}
	}
	return out
}

// linkedBy waits until every peer of p has logged a link up to it since
// from, and returns the time of the last one.
func (b *bench) linkedBy(p *proc, from time.Time) (time.Time, error) {
	peers := b.peersOf(p)
	var last time.Time
	err := b.waitFor("every peer linked to "+p.id, func() bool {
		last = time.Time{}
		for _, q := range peers {
			l, ok := q.find(from, "link up", p.id)
			if !ok {
				return false
			}
			last = latest(last, l.Time)
		}
		return true
	})
	return last, err
}

// waitFor polls cond every 5 ms for at most waitBound; a server that
// exits on its own ends the wait with an error naming its log.
func (b *bench) waitFor(what string, cond func() bool) error {
	deadline := time.Now().Add(waitBound)
	for {
		if cond() {
			return nil
		}
		for _, p := range b.procs {
			p.mu.Lock()
			killed := p.killed
			p.mu.Unlock()
			select {
			case <-p.done:
				if !killed {
					return fmt.Errorf("waiting for %s: %s exited (log: %s)", what, p.id, p.logPath)
				}
			default:
			}
		}
		if b.ctx.Err() != nil {
			return fmt.Errorf("waiting for %s: %w", what, b.ctx.Err())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v", what, waitBound)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (b *bench) killAll() {
	for _, p := range b.procs {
		_ = p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(waitBound):
		}
	}
}

// agent is the bench's Consul dev agent.
type agent struct {
	*consultest.Agent
	version string
}

// startAgent starts `consul agent -dev` on free loopback ports, its data in
// dir, and waits until it has a leader and its node is in the catalog.
func startAgent(ctx context.Context, dir string) (*agent, error) {
	ca, err := consultest.Launch(dir, consultest.Options{})
	if err != nil {
		return nil, fmt.Errorf("%w; build it with `bash tools/consul/build.sh`", err)
	}
	a := &agent{Agent: ca}
	if bin, err := consultest.Binary(); err == nil {
		out, _ := exec.Command(bin, "version").Output()
		first, _, _ := strings.Cut(string(out), "\n")
		a.version = strings.TrimPrefix(first, "Consul ")
	}
	client, err := a.API()
	if err != nil {
		a.Stop()
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if nodes, _, err := client.Catalog().Nodes(nil); err == nil && len(nodes) > 0 {
			return a, nil
		}
		select {
		case <-ctx.Done():
			a.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			a.Stop()
			return nil, errors.New("consul agent's node not in the catalog within 30 s")
		}
	}
}

// percentile returns the nearest-rank percentile p (0 < p <= 1) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func msText(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
