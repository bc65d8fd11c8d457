package consul

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/internal/consultest"
	"github.com/cloudrift/cloudrift/registry"
	"github.com/cloudrift/cloudrift/registry/registrytest"
)

// The shared connector suite, against one real dev agent. Every subtest
// uses its own groups, so they share the agent.
func TestConformance(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	registrytest.Run(t, func(t *testing.T) func() registry.Connector {
		return func() registry.Connector {
			c, err := New(Config{System: "conformance", Address: agent.Addr()})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			return c
		}
	})
}

// wait bounds every wait of these tests for something the agent does; it
// is a failure deadline, not an expected duration.
const wait = 30 * time.Second

// conn returns a connector to agent, closed when the test ends.
func conn(t *testing.T, agent *consultest.Agent, cfg Config) *Connector {
	t.Helper()
	if cfg.System == "" {
		cfg.System = "sys"
	}
	cfg.Address = agent.Addr()
	if cfg.Token == "" {
		cfg.Token = agent.Token()
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// watcher reads a watch channel in the test goroutine.
type watcher struct {
	t    *testing.T
	ch   <-chan []registry.Member
	last []registry.Member
	seen [][]registry.Member
}

func watch(t *testing.T, c *Connector, group string) *watcher {
	t.Helper()
	ch, err := c.Watch(t.Context(), group)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	return &watcher{t: t, ch: ch}
}

// until returns once the latest snapshot has exactly the IDs given.
func (w *watcher) until(ids ...string) {
	w.t.Helper()
	slices.Sort(ids)
	match := func() bool {
		got := make([]string, len(w.last))
		for i, m := range w.last {
			got[i] = m.ID
		}
		return w.seen != nil && slices.Equal(got, ids)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for n := 0; !match(); n++ {
		if n > 10_000 {
			w.t.Fatalf("no snapshot with %v in %d snapshots", ids, n)
		}
		select {
		case ms, ok := <-w.ch:
			if !ok {
				w.t.Fatalf("watch closed waiting for %v; last %v", ids, w.last)
			}
			w.last = ms
			w.seen = append(w.seen, ms)
		case <-timer.C:
			w.t.Fatalf("no snapshot with %v within %v; last %v", ids, wait, w.last)
		}
	}
}

// sawEmpty reports whether an empty snapshot came since index from.
func (w *watcher) sawEmpty(from int) bool {
	for _, ms := range w.seen[from:] {
		if len(ms) == 0 {
			return true
		}
	}
	return false
}

// statusOf returns the aggregated check status of serviceID in service as
// the agent reports it ("" when the agent does not know it).
func statusOf(t *testing.T, c *api.Client, service, serviceID string) string {
	t.Helper()
	entries, _, err := c.Health().Service(service, "", false, nil)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if e.Service.ID == serviceID {
			return e.Checks.AggregatedStatus()
		}
	}
	return ""
}

// pollUntil calls cond every 20 ms until it is true, and returns the time
// that took; it fails the test after wait.
func pollUntil(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for range int(wait / (20 * time.Millisecond)) {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, wait)
	return 0
}

// logLines collects the messages a connector logs.
type logLines struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logLines) Write(p []byte) (int, error) {
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(bytes.TrimSpace(p), &e) == nil {
		l.mu.Lock()
		l.msgs = append(l.msgs, e.Message)
		l.mu.Unlock()
	}
	return len(p), nil
}

func (l *logLines) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// An agent restart loses every registration (dev mode): the heartbeat
// registers the member again, and a watch from another connector sees it.
func TestAgentRestartReregisters(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	logs := &logLines{}
	a := conn(t, agent, Config{TTL: 3 * time.Second, Logger: zerolog.New(logs)})
	b := conn(t, agent, Config{})
	m := member("g", "a", 7)
	if err := a.Register(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	w := watch(t, b, "g")
	w.until("a")
	seen := len(w.seen)
	client, err := agent.API()
	if err != nil {
		t.Fatal(err)
	}

	agent.Restart()
	up := time.Now()
	if s := statusOf(t, client, "cloudrift-sys-g", "sys:a"); s == api.HealthPassing {
		t.Log("registration already back when the restarted agent answered")
	}
	back := pollUntil(t, "member passing again after the restart", func() bool {
		return statusOf(t, client, "cloudrift-sys-g", "sys:a") == api.HealthPassing
	})
	w.until("a")
	seenBack := time.Since(up)
	if n := logs.count("consul lost the registration"); n != 1 {
		t.Errorf("re-registrations logged: %d, want 1", n)
	}
	t.Logf("agent restart: member passing again %v after the agent answered (heartbeat every %v); "+
		"watch has it %v after; watch published an empty set in between: %v",
		back.Round(time.Millisecond), a.heartbeatInterval(), seenBack.Round(time.Millisecond), w.sawEmpty(seen))
}

// A stopped agent publishes nothing (the last set stands); when it returns,
// members register again and the watch resumes, seeing a newcomer.
func TestAgentOutageKeepsLastSet(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	logs := &logLines{}
	a := conn(t, agent, Config{TTL: 3 * time.Second})
	b := conn(t, agent, Config{Logger: zerolog.New(logs)})
	if err := a.Register(t.Context(), member("g", "a", 1)); err != nil {
		t.Fatal(err)
	}
	w := watch(t, b, "g")
	w.until("a")

	agent.Stop()
	pollUntil(t, "watch failing repeatedly", func() bool {
		return logs.count("watch query failed again") >= 3
	})
	noSnapshot(t, w.ch, "during the outage")

	agent.Restart()
	up := time.Now()
	newcomer := conn(t, agent, Config{})
	if err := newcomer.Register(t.Context(), member("g", "n", 2)); err != nil {
		t.Fatalf("Register after the outage: %v", err)
	}
	w.until("a", "n")
	t.Logf("outage: watch resumed with both members %v after the agent answered", time.Since(up).Round(time.Millisecond))
}

// A crashed server (heartbeat stopped, no deregistration) stops being
// passing within its TTL, and watches drop it.
func TestCrashedMemberGoesCritical(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	const ttl = 2 * time.Second
	a := conn(t, agent, Config{TTL: ttl})
	b := conn(t, agent, Config{})
	if err := a.Register(t.Context(), member("g", "a", 1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(t.Context(), member("g", "b", 2)); err != nil {
		t.Fatal(err)
	}
	w := watch(t, b, "g")
	w.until("a", "b")
	client, err := agent.API()
	if err != nil {
		t.Fatal(err)
	}

	a.crash()
	start := time.Now()
	var local time.Duration
	critical := pollUntil(t, "crashed member critical", func() bool {
		if local == 0 {
			if checks, err := client.Agent().Checks(); err == nil {
				if c := checks["service:sys:a"]; c != nil && c.Status == api.HealthCritical {
					local = time.Since(start)
				}
			}
		}
		return statusOf(t, client, "cloudrift-sys-g", "sys:a") == api.HealthCritical
	})
	w.until("b")
	dropped := time.Since(start)
	// Still listed (critical), not deregistered: Consul removes it only
	// after DeregisterAfter.
	if s := statusOf(t, client, "cloudrift-sys-g", "sys:a"); s != api.HealthCritical {
		t.Errorf("crashed member status %q, want critical", s)
	}
	t.Logf("crash: TTL %v, heartbeat every %v; after the crash: agent's check critical %v, "+
		"catalog (health queries) critical %v, watch dropped it %v",
		ttl, a.heartbeatInterval(), local.Round(time.Millisecond),
		critical.Round(time.Millisecond), dropped.Round(time.Millisecond))
}

// An agent with ACLs (default deny): the management token works; a wrong
// token gives ErrUnauthorized naming the problem and the token's source.
func TestACL(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{ACL: true})
	good := conn(t, agent, Config{})
	if err := good.Register(t.Context(), member("g", "a", 1)); err != nil {
		t.Fatalf("Register with the management token: %v", err)
	}
	watch(t, good, "g").until("a")

	wrongToken := "00000000-1111-2222-3333-444444444444"
	bad := conn(t, agent, Config{Token: wrongToken})
	err := bad.Register(t.Context(), member("g", "b", 2))
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Register with a wrong token: %v, want ErrUnauthorized", err)
	}
	for _, want := range []string{"token does not exist", "registry config", "register b"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	t.Logf("wrong token (config): %v", err)

	// From the environment: the message names the variable.
	t.Setenv("CONSUL_HTTP_TOKEN", wrongToken)
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", "")
	fromEnv, err := New(Config{System: "sys", Address: agent.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fromEnv.Close() })
	err = fromEnv.Register(t.Context(), member("g", "c", 3))
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "CONSUL_HTTP_TOKEN") {
		t.Errorf("Register with a wrong token from the environment: %v", err)
	}

	// No token at all (anonymous, denied by default).
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	anon, err := New(Config{System: "sys", Address: agent.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = anon.Close() })
	err = anon.Register(t.Context(), member("g", "d", 4))
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "no token set") {
		t.Errorf("Register without a token: %v", err)
	}
	t.Logf("no token: %v", err)

	// The refused members never show up.
	w := watch(t, good, "g")
	w.until("a")
}
