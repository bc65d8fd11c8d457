// Package consultest starts a real Consul agent (`consul agent -dev`) on free
// loopback ports for tests, and stops it when the test ends.
//
// The binary is found, in order, at $CLOUDRIFT_CONSUL, at <repo>/.bin/consul
// (built by tools/consul/build.sh) and on PATH. When it is missing, Start
// skips the test with a message saying how to build it; under CI=true it
// fails the test instead, so a CI run never passes by skipping.
//
// Every agent is a separate process with its own ports and data: tests may
// start several in parallel. An agent in dev mode keeps everything in
// memory, so Restart loses every registration, as a real dev agent does.
//
// StartCluster runs three Consul servers instead (cluster.go): a datacenter
// that can lose one server and keep its quorum.
package consultest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// EnvBinary names the environment variable that overrides the consul binary.
const EnvBinary = "CLOUDRIFT_CONSUL"

// module is the module path of the repository whose .bin/consul is used.
const module = "github.com/cloudrift/cloudrift"

// Bounds of every wait, so a broken agent fails a test instead of hanging it.
const (
	readyTimeout = 30 * time.Second // from process start to an elected leader
	stopTimeout  = 10 * time.Second // from SIGTERM to SIGKILL
	startTries   = 3                // attempts with fresh ports when a port was taken
)

// Options select the agent's configuration. The zero value is a dev agent
// without ACLs.
type Options struct {
	// ACL enables ACLs with default policy "deny". MasterToken is then the
	// initial management token (a fresh UUID when empty); every other
	// token, and no token, is denied everything.
	ACL bool
	// MasterToken is the initial management token when ACL is set.
	MasterToken string
}

// Agent is one running (or stopped) consul dev agent. Restart must be
// called from the test's goroutine (it may call t.Fatal).
type Agent struct {
	t      testing.TB // nil for an agent from Launch
	bin    string
	dir    string
	ports  ports
	token  string
	acl    bool
	logSeq int
	// peer, when set, makes the agent a server of a cluster (see
	// StartCluster) instead of a dev agent.
	peer *peer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

type ports struct {
	http, serfLAN, serfWAN, server int
}

// Start launches a dev agent on free loopback ports (see Launch), in a
// directory of the test's, and registers a cleanup that stops it. It skips
// the test when no consul binary is found, or fails it under CI=true.
func Start(t testing.TB, opts Options) *Agent {
	t.Helper()
	if _, err := Binary(); err != nil {
		msg := fmt.Sprintf("consultest: %v; build it with `bash tools/consul/build.sh` "+
			"(writes .bin/consul at the repository root) or set %s to a consul binary", err, EnvBinary)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: a missing consul binary fails instead of skipping)")
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	a, err := Launch(dir, opts)
	if err != nil {
		t.Fatalf("consultest: %v", err)
	}
	a.t = t
	t.Cleanup(func() {
		a.Stop()
		if t.Failed() {
			t.Logf("consultest: agent logs are in %s", dir)
		}
	})
	return a
}

// Launch starts a dev agent on free loopback ports, with its data and logs
// in dir, and waits until its HTTP API answers and a leader is elected
// (and, with ACLs, until the management token works). It is Start for
// programs that are not tests (benchmarks); the caller stops the agent.
func Launch(dir string, opts Options) (*Agent, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	a := &Agent{bin: bin, dir: dir, acl: opts.ACL, token: opts.MasterToken}
	if a.acl && a.token == "" {
		if a.token, err = newUUID(); err != nil {
			return nil, err
		}
	}
	var lastErr error
	for try := 0; try < startTries; try++ {
		p, err := freePorts(4)
		if err != nil {
			return nil, fmt.Errorf("find free ports: %w", err)
		}
		a.ports = ports{http: p[0], serfLAN: p[1], serfWAN: p[2], server: p[3]}
		if lastErr = a.start(); lastErr == nil {
			return a, nil
		}
	}
	return nil, fmt.Errorf("start consul agent (%d attempts): %w", startTries, lastErr)
}

// Addr returns the host:port of the agent's HTTP API.
func (a *Agent) Addr() string {
	return net.JoinHostPort(a.host(), strconv.Itoa(a.ports.http))
}

// Token returns the management token of an ACL agent, "" without ACLs.
func (a *Agent) Token() string {
	if !a.acl {
		return ""
	}
	return a.token
}

// API returns a plain Consul API client for the agent, with its token: to
// check what Consul itself reports, or to plant registrations. It keeps no
// idle connections (the agent may be restarted) and gives up on a request
// after 5 s.
func (a *Agent) API() (*api.Client, error) {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	return api.NewClient(&api.Config{Address: a.Addr(), Token: a.Token(), HttpClient: hc})
}

// Running reports whether the agent process is alive.
func (a *Agent) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done == nil {
		return false
	}
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM, and SIGKILL when the agent has not exited within
// 10 s, then waits for the process. Stopping a stopped agent does nothing.
func (a *Agent) Stop() {
	a.signal(syscall.SIGTERM)
}

// Kill sends SIGKILL and waits for the process. Killing a stopped agent
// does nothing.
func (a *Agent) Kill() {
	a.signal(syscall.SIGKILL)
}

// Restart stops the agent (if running) and starts it again on the same
// ports. A dev agent keeps no state: every registration is lost. It
// needs an agent from Start.
func (a *Agent) Restart() {
	a.t.Helper()
	a.Stop()
	var err error
	// A port just released may linger briefly; retry for a few seconds.
	for try := 0; try < 5; try++ {
		if err = a.start(); err == nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	a.t.Fatalf("consultest: restart consul agent on the same ports: %v", err)
}

func (a *Agent) signal(sig syscall.Signal) {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-done
	}
}

// host returns the loopback address the agent binds.
func (a *Agent) host() string {
	if a.peer != nil {
		return a.peer.host
	}
	return "127.0.0.1"
}

// start launches the process on a.ports and waits until it is ready. On
// failure the process is killed and reaped.
func (a *Agent) start() error {
	done, logPath, err := a.launch()
	if err != nil {
		return err
	}
	return a.ready(done, logPath)
}

// ready waits until the agent launched is ready; when it is not, it kills
// the process and returns why, with the end of its log.
func (a *Agent) ready(done chan struct{}, logPath string) error {
	if err := a.waitReady(done); err != nil {
		a.mu.Lock()
		cmd := a.cmd
		a.mu.Unlock()
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%w\n--- agent log (%s) ---\n%s", err, logPath, tail(logPath, 30))
	}
	return nil
}

// launch starts the process on a.ports; done is closed when it exits.
func (a *Agent) launch() (done chan struct{}, logPath string, err error) {
	args := []string{"agent", "-dev", "-node", "consultest"}
	if a.peer != nil {
		args = a.peer.args()
	}
	args = append(args,
		"-bind", a.host(),
		"-client", a.host(),
		"-log-level", "info",
		"-http-port", strconv.Itoa(a.ports.http),
		"-dns-port", "-1",
		"-grpc-port", "-1",
		"-grpc-tls-port", "-1",
		"-serf-lan-port", strconv.Itoa(a.ports.serfLAN),
		"-serf-wan-port", strconv.Itoa(a.ports.serfWAN),
		"-server-port", strconv.Itoa(a.ports.server),
	)
	if a.acl {
		file := filepath.Join(a.dir, "acl.hcl")
		hcl := fmt.Sprintf(`acl {
  enabled        = true
  default_policy = "deny"
  enable_token_persistence = false
  tokens {
    initial_management = %q
    agent              = %q
  }
}
`, a.token, a.token)
		if err := os.WriteFile(file, []byte(hcl), 0o600); err != nil {
			return nil, "", err
		}
		args = append(args, "-config-file", file)
	}

	a.logSeq++
	logPath = filepath.Join(a.dir, fmt.Sprintf("agent-%d.log", a.logSeq))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(a.bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Dir = a.dir
	cmd.Env = cleanEnv()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, "", fmt.Errorf("run %s: %w", a.bin, err)
	}
	done = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(done)
	}()
	a.mu.Lock()
	a.cmd, a.done = cmd, done
	a.mu.Unlock()
	return done, logPath, nil
}

// waitReady polls the HTTP API until a leader is elected and, with ACLs,
// the management token resolves.
func (a *Agent) waitReady(exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	base := "http://" + a.Addr()
	var last error
	for {
		last = a.probe(ctx, client, base)
		if last == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("agent exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("agent not ready within %v: %v", readyTimeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (a *Agent) probe(ctx context.Context, client *http.Client, base string) error {
	var leader string
	if err := getJSON(ctx, client, base+"/v1/status/leader", "", &leader); err != nil {
		return err
	}
	if leader == "" {
		return errors.New("no leader yet")
	}
	if a.acl {
		var self struct{ AccessorID string }
		if err := getJSON(ctx, client, base+"/v1/acl/token/self", a.token, &self); err != nil {
			return fmt.Errorf("management token: %w", err)
		}
	}
	// The catalog answers once the leader has set itself up.
	var nodes []json.RawMessage
	if err := getJSON(ctx, client, base+"/v1/catalog/nodes", a.token, &nodes); err != nil {
		return err
	}
	if len(nodes) == 0 {
		return errors.New("node not in catalog yet")
	}
	return nil
}

func getJSON(ctx context.Context, client *http.Client, url, token string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("X-Consul-Token", token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}

// Binary returns the consul binary to run: $CLOUDRIFT_CONSUL, else
// <repo>/.bin/consul, else consul on PATH.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	if root, err := repoRoot(); err == nil {
		p := filepath.Join(root, ".bin", "consul")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	return "", errors.New("no consul binary: not in $" + EnvBinary + ", <repo>/.bin/consul or PATH")
}

// repoRoot walks up from the working directory to the go.mod of module.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			s := bufio.NewScanner(f)
			s.Scan()
			first := strings.TrimSpace(s.Text())
			f.Close()
			if first == "module "+module {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root not found")
		}
		dir = parent
	}
}

// cleanEnv drops the CONSUL_* variables a developer may have set, so the
// agent's own CLI defaults apply.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONSUL_") {
			env = append(env, kv)
		}
	}
	return env
}

// freePorts returns n distinct loopback ports free for both TCP and UDP at
// the time of the call (serf uses both). They are drawn from 20000–32767,
// below the kernel's usual ephemeral range, so a port an agent gives up on
// Stop is not taken by some outgoing connection before Restart binds it again.
func freePorts(n int) ([]int, error) { return freePortsOn([]string{"127.0.0.1"}, n) }

// freePortsOn returns n ports free on every one of hosts, as freePorts.
func freePortsOn(hosts []string, n int) ([]int, error) {
	var out []int
	var hold []io.Closer
	defer func() {
		for _, c := range hold {
			c.Close()
		}
	}()
	for tries := 0; len(out) < n && tries < 1000; tries++ {
		port := 20000 + mrand.IntN(12768)
		var held []io.Closer
		free := true
		for _, h := range hosts {
			l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				free = false
				break
			}
			held = append(held, l)
			u, err := net.ListenPacket("udp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				free = false
				break
			}
			held = append(held, u)
		}
		hold = append(hold, held...)
		if free {
			out = append(out, port)
		}
	}
	if len(out) < n {
		return nil, errors.New("not enough free ports")
	}
	return out, nil
}

func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
