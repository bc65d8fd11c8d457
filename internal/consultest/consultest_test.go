package consultest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// leader returns the agent's leader address, or an error.
func leader(a *Agent) (string, error) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var l string
	err := getJSON(context.Background(), client, "http://"+a.Addr()+"/v1/status/leader", a.Token(), &l)
	return l, err
}

func TestStartRestartKill(t *testing.T) {
	a := Start(t, Options{})
	if !a.Running() {
		t.Fatal("agent not running after Start")
	}
	if l, err := leader(a); err != nil || l == "" {
		t.Fatalf("leader %q, %v", l, err)
	}
	addr := a.Addr()
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Errorf("address %s not on loopback", addr)
	}

	a.Restart()
	if a.Addr() != addr {
		t.Errorf("address after Restart %s, want %s", a.Addr(), addr)
	}
	if l, err := leader(a); err != nil || l == "" {
		t.Fatalf("after Restart: leader %q, %v", l, err)
	}

	a.Kill()
	if a.Running() {
		t.Error("agent running after Kill")
	}
	if _, err := leader(a); err == nil {
		t.Error("HTTP API still answers after Kill")
	}
	a.Kill() // no-op
	a.Stop() // no-op

	a.Restart() // from stopped
	if l, err := leader(a); err != nil || l == "" {
		t.Fatalf("after Restart from killed: leader %q, %v", l, err)
	}
	a.Stop()
	if a.Running() {
		t.Error("agent running after Stop")
	}
}

func TestTwoAgents(t *testing.T) {
	a := Start(t, Options{})
	b := Start(t, Options{})
	if a.Addr() == b.Addr() {
		t.Fatalf("two agents on one address %s", a.Addr())
	}
	for _, x := range []*Agent{a, b} {
		if l, err := leader(x); err != nil || l == "" {
			t.Errorf("%s: leader %q, %v", x.Addr(), l, err)
		}
	}
}

func TestACLAgent(t *testing.T) {
	a := Start(t, Options{ACL: true})
	if a.Token() == "" {
		t.Fatal("no management token")
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var self struct{ SecretID string }
	if err := getJSON(context.Background(), client, "http://"+a.Addr()+"/v1/acl/token/self", a.Token(), &self); err != nil {
		t.Fatalf("token/self with the management token: %v", err)
	}
	if self.SecretID != a.Token() {
		t.Errorf("token/self secret %q, want %q", self.SecretID, a.Token())
	}
	// Default deny: anonymous reads of the catalog's services are refused
	// or filtered to nothing.
	var services map[string][]string
	if err := getJSON(context.Background(), client, "http://"+a.Addr()+"/v1/catalog/services", "", &services); err == nil && len(services) != 0 {
		t.Errorf("anonymous catalog read: %v, want denied", services)
	}
	token := "7b6ab0c3-6a59-4f28-9d2c-0d1b1bcf4a11"
	b := Start(t, Options{ACL: true, MasterToken: token})
	if b.Token() != token {
		t.Errorf("Token() %q, want %q", b.Token(), token)
	}
	if err := getJSON(context.Background(), client, "http://"+b.Addr()+"/v1/acl/token/self", token, &self); err != nil {
		t.Errorf("given management token: %v", err)
	}
}

// recorder stands in for a test to see whether Start skips or fails.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Skip(args ...any)  { r.skipped = fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Fatal(args ...any) { r.failed = fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func startWith(t *testing.T) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(r, Options{})
		t.Error("Start returned without a consul binary")
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return")
	}
	return r
}

func TestMissingBinary(t *testing.T) {
	t.Setenv(EnvBinary, "/nonexistent/consul")

	t.Setenv("CI", "")
	r := startWith(t)
	if r.skipped == "" || r.failed != "" {
		t.Errorf("outside CI: skipped %q, failed %q; want a skip", r.skipped, r.failed)
	}
	if !strings.Contains(r.skipped, "tools/consul/build.sh") {
		t.Errorf("skip message %q does not say how to build consul", r.skipped)
	}

	t.Setenv("CI", "true")
	r = startWith(t)
	if r.failed == "" || r.skipped != "" {
		t.Errorf("under CI=true: skipped %q, failed %q; want a failure", r.skipped, r.failed)
	}
	if !strings.Contains(r.failed, "tools/consul/build.sh") || !strings.Contains(r.failed, "CI=true") {
		t.Errorf("failure message %q is not clear", r.failed)
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "consultest", "consultest.go")); err != nil {
		t.Fatalf("root %q is not this repository: %v", root, err)
	}
}

// A cluster of three servers elects a leader and keeps answering, with
// the same leader or a new one, after losing one server.
func TestClusterLosesOneServer(t *testing.T) {
	c := StartCluster(t)
	leader := c.Leader(0)
	if leader < 0 {
		t.Fatal("no leader after StartCluster")
	}
	c.Server(leader).Kill()
	other := (leader + 1) % ClusterSize
	deadline := time.Now().Add(readyTimeout)
	for {
		if l := c.Leader(other); l >= 0 && l != leader {
			t.Logf("leader server %d lost; server %d leads now", leader+1, l+1)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new leader within %v after losing server %d", readyTimeout, leader+1)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
