package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/cloudrift/cloudrift/internal/consultest"
)

// statusFile writes a system file on the consul registry at addr, with a
// token line when token is not empty.
func statusFile(t *testing.T, addr, token string) string {
	t.Helper()
	tok := ""
	if token != "" {
		tok = "\n    token: " + token
	}
	return writeFile(t, "status.yaml", fmt.Sprintf(`system: statustest
secret: ${CLOUDRIFT_SECRET}
registry:
  type: consul
  settings:
    address: %s%s
groups:
  - name: edge
    visibility: external
    connectsTo: [core]
  - name: core
    visibility: internal
  - name: spare
    visibility: internal
`, addr, tok))
}

// incarnation returns the incarnation Consul holds for member id of group.
func incarnation(t *testing.T, c *api.Client, group, id string) string {
	t.Helper()
	svcs, err := c.Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	s, ok := svcs["statustest:"+id]
	if !ok || s.Service != "cloudrift-statustest-"+group {
		t.Fatalf("consul has no service for %s of group %s: %v", id, group, svcs)
	}
	return s.Meta["cloudrift_incarnation"]
}

// memberLine matches status's line for one member.
func memberLine(id, addr, inc, health string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(id) + `\s+` + regexp.QuoteMeta(addr) + `\s+` +
		regexp.QuoteMeta(inc) + `\s+\S+\s+` + regexp.QuoteMeta(health) + `\s*$`)
}

// Status lists the servers two "run" commands registered, passing, and a
// server that crashed, critical with Consul's reason, each with its address
// and incarnation as Consul holds them.
func TestStatusWithConsul(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	path := statusFile(t, agent.Addr(), "")

	coreCmd := start(t, "run", "-config", path, "-group", "core", "-id", "core-1", "-log-level", "disabled")
	core := coreCmd.Match(t, &coreCmd.Stdout, listening)
	edgeCmd := start(t, "run", "-config", path, "-group", "edge", "-id", "edge-1", "-log-level", "disabled")
	edge := edgeCmd.Match(t, &edgeCmd.Stdout, listening)

	// A server of core that crashed: registered with a 1 s TTL check
	// nobody renews, as the connector would have registered it.
	client, err := agent.API()
	if err != nil {
		t.Fatal(err)
	}
	err = client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "statustest:core-dead", Name: "cloudrift-statustest-core", Address: "127.0.0.1", Port: 9,
		Tags: []string{"cloudrift", "system=statustest", "group=core"},
		Meta: map[string]string{"cloudrift_incarnation": "424242"},
		Check: &api.AgentServiceCheck{CheckID: "service:statustest:core-dead", TTL: "1s", Status: api.HealthPassing,
			DeregisterCriticalServiceAfter: "1m"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// A server of core that drains (registry.MetaDraining).
	err = client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "statustest:core-draining", Name: "cloudrift-statustest-core", Address: "127.0.0.1", Port: 10,
		Tags: []string{"cloudrift", "system=statustest", "group=core"},
		Meta: map[string]string{"cloudrift_incarnation": "434343", "draining": "1"},
		Check: &api.AgentServiceCheck{CheckID: "service:statustest:core-draining", TTL: "1m", Status: api.HealthPassing,
			DeregisterCriticalServiceAfter: "1m"},
	})
	if err != nil {
		t.Fatal(err)
	}

	coreLine := memberLine("core-1", core[3], incarnation(t, client, "core", "core-1"), "passing")
	edgeLine := memberLine("edge-1", edge[3], incarnation(t, client, "edge", "edge-1"), "passing")
	deadLine := memberLine("core-dead", "127.0.0.1:9", "424242", "critical (TTL expired)")
	drainingLine := memberLine("core-draining", "127.0.0.1:10", "434343", "passing, draining")
	var out, errOut string
	deadline := time.Now().Add(20 * time.Second)
	for {
		var code int
		code, out, errOut = runSync(t, "status", "-config", path)
		if code != 0 {
			t.Fatalf("status: exit %d; stderr:\n%s", code, errOut)
		}
		if deadLine.MatchString(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the crashed server is not listed critical within 20 s:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`system "statustest": 4 servers in 3 groups, as Consul at ` + regexp.QuoteMeta(agent.Addr())),
		regexp.MustCompile(`(?m)^edge \(external\): 1 server: 1 passing$`),
		regexp.MustCompile(`(?m)^core \(internal\): 3 servers: 2 passing, 1 critical$`),
		regexp.MustCompile(`(?m)^spare \(internal\): no servers$`),
		coreLine, edgeLine, deadLine, drainingLine,
	} {
		if !want.MatchString(out) {
			t.Errorf("status output does not match %q:\n%s", want, out)
		}
	}
	t.Logf("status:\n%s", out)
}

func TestStatusErrors(t *testing.T) {
	code, _, errOut := runSync(t, "status", "-config", repoFile)
	if code != exitFail || !strings.Contains(errOut, "embedded registry") || !strings.Contains(errOut, "type: consul") {
		t.Errorf("status on an embedded registry: exit %d, stderr %q; want 1 and a message naming both registries", code, errOut)
	}

	// Nothing listens on port 1: the message names the address.
	path := statusFile(t, "127.0.0.1:1", "")
	code, out, errOut := runSync(t, "status", "-config", path)
	if code != exitFail || !strings.Contains(errOut, "unreachable at 127.0.0.1:1") || out != "" {
		t.Errorf("status against no agent: exit %d, stdout %q, stderr %q; want 1 and a message naming 127.0.0.1:1", code, out, errOut)
	}

	// Something that accepts connections and never answers: -timeout ends
	// the wait, and the message says so.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	conns.Add(1)
	go func() {
		defer conns.Done()
		var held []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	mute := statusFile(t, ln.Addr().String(), "")
	code, _, errOut = runSync(t, "status", "-config", mute, "-timeout", "300ms")
	ln.Close()
	conns.Wait()
	if code != exitFail || !strings.Contains(errOut, "no answer from Consul at "+ln.Addr().String()+" within 300ms") {
		t.Errorf("status against a mute agent: exit %d, stderr %q; want 1 and a message naming the address and the timeout", code, errOut)
	}

	code, _, _ = runSync(t, "status", "-config", path, "-timeout", "0s")
	if code != exitUsage {
		t.Errorf("status -timeout 0s: exit %d, want %d", code, exitUsage)
	}
	code, _, _ = runSync(t, "status", "-config", path, "extra")
	if code != exitUsage {
		t.Errorf("status with an argument: exit %d, want %d", code, exitUsage)
	}
	code, out, _ = runSync(t, "help", "status")
	if code != 0 || !strings.Contains(out, "-timeout") {
		t.Errorf("help status: exit %d, %q", code, out)
	}
}

// With ACLs (default deny), status works with the token from the file or
// from CONSUL_HTTP_TOKEN, and says what is wrong with a wrong one.
func TestStatusACL(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{ACL: true})
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", "")
	t.Setenv("CONSUL_HTTP_TOKEN", "")

	code, out, errOut := runSync(t, "status", "-config", statusFile(t, agent.Addr(), agent.Token()))
	if code != 0 || !strings.Contains(out, "no servers") {
		t.Errorf("status with the token in the file: exit %d\n%s%s", code, out, errOut)
	}

	noToken := statusFile(t, agent.Addr(), "")
	code, _, errOut = runSync(t, "status", "-config", noToken)
	if code != exitFail || !strings.Contains(errOut, "ACL token refused") || !strings.Contains(errOut, "no token set") {
		t.Errorf("status without a token: exit %d, stderr %q; want 1 and an ACL message", code, errOut)
	}

	t.Setenv("CONSUL_HTTP_TOKEN", agent.Token())
	code, out, errOut = runSync(t, "status", "-config", noToken)
	if code != 0 || !strings.Contains(out, "no servers") {
		t.Errorf("status with CONSUL_HTTP_TOKEN: exit %d\n%s%s", code, out, errOut)
	}

	t.Setenv("CONSUL_HTTP_TOKEN", "00000000-1111-2222-3333-444444444444")
	code, _, errOut = runSync(t, "status", "-config", noToken)
	if code != exitFail || !strings.Contains(errOut, "token does not exist") || !strings.Contains(errOut, "CONSUL_HTTP_TOKEN") {
		t.Errorf("status with a wrong token: exit %d, stderr %q; want 1, the problem and the token's source", code, errOut)
	}
}

// run -log-json writes one JSON object per log line, with a time precise
// enough to time events across processes.
func TestRunLogJSON(t *testing.T) {
	c := start(t, "run", "-config", repoFile, "-group", "world", "-log-json", "-log-level", "info")
	c.Match(t, &c.Stderr, regexp.MustCompile(`"message":"server starting"`))
	c.Stop(t)
	n := 0
	for _, line := range strings.Split(c.Stderr.String(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var e struct {
			Level, Message, Server, Time string
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, line)
		}
		if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil || !strings.Contains(e.Time, ".") {
			t.Errorf("time %q: want RFC 3339 with fractional seconds (%v)", e.Time, err)
		}
		if e.Level == "" || e.Message == "" {
			t.Errorf("log line without level or message: %s", line)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("no JSON log lines in:\n%s", &c.Stderr)
	}
	if !strings.Contains(c.Stderr.String(), `"server":"world-`) {
		t.Errorf("no server field in the logs:\n%s", &c.Stderr)
	}
}
