package deploytest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/cloudrift/cloudrift/internal/consultest"
	"github.com/cloudrift/cloudrift/protocol"
)

// A replica started as a separate process is linked by every peer; killed
// with SIGKILL, its peers drop it as soon as its connections end, and
// Consul stops listing it as passing within the TTL.
func TestReplicaJoinAndKill(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	d := newDeployment(t, agent, "")
	d.start("back", "back-1")
	d.start("back", "back-2")
	d.start("mid", "mid-1")
	d.start("front", "front-1")
	d.start("front", "front-2")
	d.mesh()

	m := d.start("mid", "mid-2")
	peers := d.peersOf(m)
	last := d.linkedBy(m, m.started)
	t.Logf("join: mid-2 linked by all %d peers %s after its process started", len(peers), ms(last.Sub(m.started)))
	d.waitFor("mid-2 passing in Consul", func() bool { return d.health("mid")["mid-2"].Status == api.HealthPassing })

	killed := m.Kill()
	var lastDown time.Time
	d.waitFor("every peer dropped mid-2", func() bool {
		lastDown = time.Time{}
		for _, q := range peers {
			l, ok := q.Find(killed, linkDown("mid-2"))
			if !ok {
				return false
			}
			if l.Time.After(lastDown) {
				lastDown = l.Time
			}
		}
		return true
	})
	// "At once": each peer saw the connection end. A drop because the
	// registry stopped listing it, or because it fell silent, would be a
	// detection in seconds, not at once.
	for _, q := range peers {
		l, _ := q.Find(killed, linkDown("mid-2"))
		if l.Reason != protocol.ReasonIO.String() {
			t.Errorf("%s dropped mid-2 for %q (%s), want %q: the end of the connection", q.ID, l.Reason, l.Detail, protocol.ReasonIO)
		}
	}
	t.Logf("kill: every peer dropped mid-2 %s after SIGKILL", ms(lastDown.Sub(killed)))

	var notPassing time.Duration
	d.waitFor("mid-2 no longer passing in Consul", func() bool {
		h, ok := d.health("mid")["mid-2"]
		if ok && h.Status != api.HealthPassing {
			notPassing = time.Since(killed)
			return true
		}
		return false
	})
	// The TTL bounds it; Consul's own timers and sync get a margin.
	if bound := ttl + 2*time.Second; notPassing > bound {
		t.Errorf("Consul listed mid-2 as passing for %v after SIGKILL, past the TTL %v (+2 s margin)", notPassing, ttl)
	}
	t.Logf("kill: Consul stopped listing mid-2 as passing %s after SIGKILL (TTL %v)", ms(notPassing), ttl)

	// cloudrift status shows the same, with Consul's reason.
	out, err := exec.Command(binary, "status", "-config", d.file).CombinedOutput()
	if err != nil {
		t.Fatalf("cloudrift status: %v\n%s", err, out)
	}
	for _, want := range []string{
		`(?m)^mid \(internal\): 2 servers: 1 passing, 1 critical$`,
		`(?m)^\s+mid-2\s+127\.0\.0\.1:\d+\s+\d+\s+\S+\s+critical \(TTL expired\)$`,
		`(?m)^\s+mid-1\s+127\.0\.0\.1:\d+\s+\d+\s+\S+\s+passing$`,
		`(?m)^front \(external\): 2 servers: 2 passing$`,
		`(?m)^back \(internal\): 2 servers: 2 passing$`,
	} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("cloudrift status does not match %s:\n%s", want, out)
		}
	}

	// No other link suffered.
	for _, l := range d.linkDowns(m.started) {
		if !strings.Contains(l, "link down to mid-2 ") {
			t.Error(l)
		}
	}
}

// The agent restarts and forgets every registration (dev mode): every
// server registers again within a few seconds, and no link drops, even
// past links.leaveGrace.
func TestAgentRestart(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	d := newDeployment(t, agent, "")
	d.start("back", "back-1")
	d.start("mid", "mid-1")
	d.start("mid", "mid-2")
	d.start("front", "front-1")
	d.mesh()
	d.waitFor("every server passing", d.allPassing)
	from := time.Now()

	agent.Restart()
	back := time.Now()
	d.waitFor("every server registered again", d.allPassing)
	again := time.Since(back)
	if bound := ttl + 2*time.Second; again > bound {
		t.Errorf("servers registered again %v after the agent came back, want within %v (heartbeat every TTL/3)", again, bound)
	}
	t.Logf("agent restart: down for %s; every server registered again %s after the agent was back",
		ms(back.Sub(from)), ms(again))
	// Consul lists a server before the server logs that it registered:
	// wait for the line rather than look once.
	for _, p := range d.procs {
		d.waitFor(p.ID+" logging that it registered again", func() bool {
			_, ok := p.Find(from, func(l logLine) bool { return strings.Contains(l.Message, "registered again") })
			return ok
		})
	}

	// Hold past leaveGrace: a registry that forgot a member would have had
	// its link cut by now.
	d.hold(back.Add(leaveGrace + time.Second))
	for _, l := range d.linkDowns(from) {
		t.Error(l)
	}
}

// The agent stops: the system keeps running with the members it knew and
// nothing is torn down. When the agent returns, watches resume and a newly
// started replica is linked.
func TestAgentOutage(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	d := newDeployment(t, agent, "")
	d.start("back", "back-1")
	d.start("mid", "mid-1")
	d.start("front", "front-1")
	d.mesh()
	d.waitFor("every server passing", d.allPassing)
	from := time.Now()

	agent.Stop()
	stopped := time.Now()
	d.hold(stopped.Add(leaveGrace + time.Second)) // past the TTL and leaveGrace
	for _, p := range d.procs {
		if _, ok := p.Find(from, func(l logLine) bool { return strings.HasPrefix(l.Message, "watch query failed") }); !ok {
			t.Errorf("%s did not notice the outage (no failed watch query logged)", p.ID)
		}
	}
	for _, l := range d.linkDowns(from) {
		t.Errorf("during the outage: %s", l)
	}

	agent.Restart()
	back := time.Now()
	d.waitFor("every server registered again", d.allPassing)
	t.Logf("agent outage: down for %s; every server registered again %s after the agent was back",
		ms(back.Sub(stopped)), ms(time.Since(back)))

	// Each watch resumes once its backoff (capped at 2 s) ends. A watch
	// may recover before Restart has returned (the agent answers before it
	// has a leader), so count recoveries since the agent stopped.
	var resumed time.Time
	d.waitFor("every watch resumed", func() bool {
		resumed = time.Time{}
		for _, p := range d.procs {
			ls := p.Logs(stopped, func(l logLine) bool { return l.Message == "watch query recovered" })
			if len(ls) < len(Peers(p.Group)) {
				return false
			}
			if t := ls[len(ls)-1].Time; t.After(resumed) {
				resumed = t
			}
		}
		return true
	})
	t.Logf("agent outage: every watch resumed %s after the agent was back", ms(resumed.Sub(back)))

	n := d.start("mid", "mid-2")
	last := d.linkedBy(n, n.started)
	t.Logf("after the outage: mid-2 linked by all %d peers %s after its process started", len(d.peersOf(n)), ms(last.Sub(n.started)))

	d.hold(back.Add(leaveGrace + time.Second))
	for _, l := range d.linkDowns(from) {
		t.Error(l)
	}
}

// With ACLs (default deny), a valid token works from the system file or
// from CONSUL_HTTP_TOKEN; a wrong or missing token stops "run" at startup
// with a message that names the problem.
func TestACL(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{ACL: true})
	d := newDeployment(t, agent, agent.Token()) // the token in the file
	d.start("back", "back-1")
	d.start("mid", "mid-1")
	noToken := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(noToken, []byte(system(agent.Addr(), "")), 0o600); err != nil {
		t.Fatal(err)
	}
	front := startProc(t, "front", "front-1", noToken, "127.0.0.1:0", "CONSUL_HTTP_TOKEN="+agent.Token())
	d.procs = append(d.procs, front)
	d.mesh()
	d.waitFor("every server passing", d.allPassing)

	const wrong = "00000000-1111-2222-3333-444444444444"
	wrongFile := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(wrongFile, []byte(system(agent.Addr(), wrong)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, file string
		env        []string
		want       []string
	}{
		{"wrong token in the file", wrongFile, nil,
			[]string{"ACL token refused", "token does not exist", "registry config", agent.Addr()}},
		{"wrong token in CONSUL_HTTP_TOKEN", noToken, []string{"CONSUL_HTTP_TOKEN=" + wrong},
			[]string{"ACL token refused", "token does not exist", "CONSUL_HTTP_TOKEN"}},
		{"no token", noToken, nil,
			[]string{"ACL token refused", "no token set"}},
	} {
		p := startProc(t, "mid", "mid-refused", c.file, "127.0.0.1:0", c.env...)
		stderr, err := p.WaitExit()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("%s: run ended with %v, want exit status 1", c.name, err)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr does not mention %q:\n%s", c.name, w, stderr)
			}
		}
		if c.name == "wrong token in the file" {
			t.Logf("%s: %s", c.name, lastLine(stderr))
		}
	}
	if hs := d.health("mid"); len(hs) != 1 {
		t.Errorf("Consul lists %d servers of mid, want only mid-1: %v", len(hs), hs)
	}
	for _, l := range d.linkDowns(time.Time{}) {
		t.Error(l)
	}
}

// hold waits until the deadline, failing the test if a server exits.
func (d *deployment) hold(until time.Time) {
	d.t.Helper()
	for time.Now().Before(until) {
		for _, p := range d.procs {
			p.mu.Lock()
			killed := !p.killed.IsZero()
			p.mu.Unlock()
			if ended, err := p.Exited(); ended && !killed {
				d.t.Fatalf("%s exited (%v)", p.ID, err)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
