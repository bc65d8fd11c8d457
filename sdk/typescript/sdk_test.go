// Package typescript_test builds the TypeScript SDK with tsc and runs its
// Node tests (test/*.test.mjs) against a real system started in-process:
// two client servers hosting an echo plugin, and two cloud-memory
// replicas, over loopback. The Node tests find the client servers' URLs in
// CLOUDRIFT_TEST_URLS (comma-separated).
//
// Three more client servers are there to be stopped, one each, by the
// failover test (test/failover.test.mjs), so that the test files running
// in parallel never lose their servers: the one at CLOUDRIFT_TEST_KILL_URL
// is killed (Server.Kill: no Close frame, as when a process dies), the one
// at CLOUDRIFT_TEST_SHUTDOWN_URL shut down gracefully (its clients get a
// Close of ReasonShutdown), the one at CLOUDRIFT_TEST_DRAIN_URL drained
// (its clients get a Move). A client asks for it with a tagStop message;
// the echo plugin passes the request to the test goroutine, which stops
// the server while Node runs. CLOUDRIFT_TEST_DIRECTORY is the client
// group's directory (GET /servers on the first client server).
//
// Without tsc (Debian: apt-get install node-typescript) or node on PATH
// the test skips, unless CI=true, where it fails.
package typescript_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/plugins/extension"
	"github.com/cloudrift/cloudrift/protocol"

	_ "github.com/cloudrift/cloudrift/plugins/cloudmemory"
)

// The echo plugin's tags: what a test client asks the server to do.
const (
	tagEcho    = 1 // send the payload back with the same tag
	tagKick    = 2 // kick the sender, the payload being the message
	tagWhoAmI  = 3 // answer JSON {ref, header, query}: what Authenticate saw
	tagBurst   = 4 // payload u32 n: send n messages of tagBurstMsg, payload u32 0..n-1
	tagBurstMs = 5
	tagStop    = 6 // payload "kill" or "shutdown": stop the server this way (victims only)
)

// How a victim is stopped: the payloads of tagStop.
const (
	stopKill     = "kill"
	stopShutdown = "shutdown"
	stopDrain    = "drain"
)

// stopRequest is a tagStop message, passed from the echo plugin to the
// test goroutine: stop the server id as how says.
type stopRequest struct{ id, how string }

// kindEchoFrame is the extension kind the echo plugin claims: it sends
// every such frame back.
const kindEchoFrame protocol.Kind = 72

// refusedToken makes Authenticate refuse a client, in the query or the
// X-Token header.
const refusedToken = "refuse-me"

// system is the system file of the test; the client group's plugins are
// given in code (echo).
const system = `
system: sdk-test
secret: sdk-test-secret-of-enough-length
registry:
  type: embedded
groups:
  - name: client
    visibility: external
    listen: "127.0.0.1:0"
    connectsTo: [cloud]
    replicas: 2
    clients:
      maxMessageBytes: 1024
      rate: 1000
      burst: 300
      readTimeout: 10s
  - name: cloud
    visibility: internal
    replicas: 2
    plugins:
      - name: cloudmemory
        settings:
          serverGrace: 1s
`

// echo answers test clients (see the tag constants).
type echo struct {
	host extension.Host
	// id and stops are set on victims only: tagStop sends a request for
	// server id on stops. Nil stops: tagStop is refused.
	id    string
	stops chan<- stopRequest
}

func (e *echo) Start(_ context.Context, h plugins.Host) error {
	var ok bool
	if e.host, ok = extension.Of(h); !ok {
		return fmt.Errorf("echo: %T is not a server's host", h)
	}
	return nil
}

func (echo) Authenticate(info plugins.ClientInfo) error {
	if info.Query.Get("token") == refusedToken || info.Header.Get("X-Token") == refusedToken {
		return fmt.Errorf("token %q is refused", refusedToken)
	}
	return nil
}

func (e *echo) ClientMessage(c plugins.Client, m plugins.Message) error {
	switch m.Tag {
	case tagEcho:
		return c.Send(tagEcho, m.Payload)
	case tagKick:
		c.Kick(string(m.Payload))
	case tagWhoAmI:
		info := c.Info()
		b, err := json.Marshal(map[string]string{
			"ref": c.Ref().String(), "header": info.Header.Get("X-Token"), "query": info.Query.Get("token"),
		})
		if err != nil {
			return err
		}
		return c.Send(tagWhoAmI, b)
	case tagBurst:
		if len(m.Payload) != 4 {
			return fmt.Errorf("burst: %d-byte payload", len(m.Payload))
		}
		n := binary.BigEndian.Uint32(m.Payload)
		for i := uint32(0); i < n; i++ {
			if err := c.Send(tagBurstMs, binary.BigEndian.AppendUint32(nil, i)); err != nil {
				return err
			}
		}
	case tagStop:
		if e.stops == nil {
			return fmt.Errorf("stop: server %s is not to be stopped", c.Ref().Server)
		}
		// The hook only asks: stopping the server from inside its own
		// hook would wait for itself.
		select {
		case e.stops <- stopRequest{id: e.id, how: string(m.Payload)}:
		default:
			return fmt.Errorf("stop: a request for %s is pending", e.id)
		}
	}
	return nil
}

func (echo) FrameKinds() []protocol.Kind { return []protocol.Kind{kindEchoFrame} }

func (echo) ServerFrame(rs plugins.RemoteServer, f protocol.Frame) error {
	return fmt.Errorf("echo: %s from server %s", f.Kind, rs.ID())
}

func (e *echo) ClientFrame(c plugins.Client, f protocol.Frame) error {
	return e.host.SendClientFrame(c, f.Kind, f.Tag, f.Payload)
}

// tool finds a program on PATH, skipping the test without it (failing
// it under CI=true).
func tool(t *testing.T, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not on PATH (%s)", name, hint)
		}
		t.Skipf("%s is not on PATH (%s)", name, hint)
	}
	return p
}

// startSystem starts the test system and returns it with its client
// servers' URLs.
func startSystem(t *testing.T) (*clustertest.System, []string) {
	t.Helper()
	sys := clustertest.New(t, system)
	sys.StartServer("cloud", "cloud-1")
	sys.StartServer("cloud", "cloud-2")
	var urls []string
	for _, id := range []string{"client-1", "client-2"} {
		srv := sys.StartServer("client", id, &echo{})
		sys.WaitLinkedServer(id)
		urls = append(urls, srv.URL())
	}
	return sys, urls
}

// startVictim starts one more client server, id, whose clients may ask
// for it to be stopped (tagStop) with a request on stops.
func startVictim(sys *clustertest.System, id string, stops chan<- stopRequest) *clustertest.Server {
	srv := sys.StartServer("client", id, &echo{id: id, stops: stops})
	sys.WaitLinkedServer(id)
	return srv
}

// stop stops a victim as req says; the test goroutine calls it.
func stop(t *testing.T, sys *clustertest.System, req stopRequest) {
	t.Helper()
	switch req.how {
	case stopKill:
		sys.Server(req.id).Kill()
	case stopShutdown:
		sys.Server(req.id).Shutdown()
	case stopDrain:
		// The drain ends by itself once its clients have moved.
		if err := sys.Server(req.id).Cluster().BeginDrain(); err != nil {
			t.Errorf("drain %s: %v", req.id, err)
		}
	default:
		t.Errorf("stop %s: unknown way %q", req.id, req.how)
	}
}

func TestNodeSDK(t *testing.T) {
	tsc := tool(t, "tsc", "Debian: apt-get install node-typescript")
	node := tool(t, "node", "Node.js 20 or later")

	build := exec.Command(tsc, "-p", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, out)
	}
	tests, err := filepath.Glob(filepath.Join("test", "*.test.mjs"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no Node tests in test/ (%v)", err)
	}

	sys, urls := startSystem(t)
	stops := make(chan stopRequest, 1)
	killed := startVictim(sys, "client-3", stops)
	shutDown := startVictim(sys, "client-4", stops)
	drained := startVictim(sys, "client-5", stops)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := append([]string{"--experimental-websocket", "--test"}, tests...)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = append(os.Environ(),
		"CLOUDRIFT_TEST_URLS="+strings.Join(urls, ","),
		"CLOUDRIFT_TEST_KILL_URL="+killed.URL(),
		"CLOUDRIFT_TEST_SHUTDOWN_URL="+shutDown.URL(),
		"CLOUDRIFT_TEST_DRAIN_URL="+drained.URL(),
		"CLOUDRIFT_TEST_DIRECTORY=http://"+sys.Server("client-1").Addr()+"/servers",
		"CLOUDRIFT_TEST_REFUSED_TOKEN="+refusedToken,
		"NODE_NO_WARNINGS=1",
	)
	// One writer for both streams: exec then writes from one goroutine
	// at a time, and out is read only once node has exited.
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("node: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for running := true; running; {
		select {
		case req := <-stops:
			stop(t, sys, req)
		case err = <-exited:
			running = false
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("node tests did not finish in time\n%s", out.String())
	}
	if err != nil {
		t.Fatalf("node tests failed: %v\n%s", err, out.String())
	}
	t.Logf("node tests:\n%s", out.String())
}
