package cluster_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/plugins/extension"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
)

// Tests of an external server's client port under hostile input.

const hostileClientsYAML = `
system: hostile
secret: 0123456789abcdef0123456789abcdef
groups:
  - name: lobby
    visibility: external
    clients: {path: /play, rate: 10, burst: 10, allowedOrigins: ["https://game.example"]}
`

// okCloud claims the client cloud kinds and answers every operation OK,
// counting them.
type okCloud struct {
	served atomic.Int64
	eh     extension.Host
}

func (o *okCloud) Start(_ context.Context, h plugins.Host) error {
	eh, ok := extension.Of(h)
	if !ok {
		return errors.New("not a cloudrift server's host")
	}
	o.eh = eh
	return nil
}

func (o *okCloud) FrameKinds() []protocol.Kind {
	return []protocol.Kind{protocol.KindCloudPost, protocol.KindCloudRelease, protocol.KindCloudGet, protocol.KindCloudUnsubscribe}
}
func (o *okCloud) ServerFrame(plugins.RemoteServer, protocol.Frame) error { return nil }
func (o *okCloud) ClientFrame(c plugins.Client, f protocol.Frame) error {
	o.served.Add(1)
	r := cloudwire.Reply{Req: binary.BigEndian.Uint32(f.Payload)}
	return o.eh.SendClientFrame(c, protocol.KindCloudReply, 0, r.AppendTo(nil))
}

// dialWS dials the lobby with gorilla directly, so a test can send what
// the SDK never would, and reads the welcome.
func dialWS(t *testing.T, url string, header http.Header) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, header)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, b, err := c.ReadMessage(); err != nil || protocol.Kind(b[0]) != protocol.KindClientWelcome {
		t.Fatalf("no welcome: %v", err)
	}
	return c
}

// closeReasonOf reads until the server's KindClose and returns its reason.
func closeReasonOf(t *testing.T, c *websocket.Conn) protocol.Reason {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("no close message: %v", err)
		}
		if f, err := protocol.DecodeWS(b); err == nil && f.Kind == protocol.KindClose {
			var cl protocol.Close
			if err := cl.Decode(f.Payload); err != nil {
				t.Fatal(err)
			}
			return cl.Reason
		}
	}
}

func TestPingFloodRateLimited(t *testing.T) {
	sys := clustertest.Start(t, hostileClientsYAML)
	lobby := sys.Server("lobby-1")
	bystander := lobby.Dial()
	c := dialWS(t, lobby.URL(), nil)
	go func() {
		for range 500 {
			if c.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)) != nil {
				return
			}
		}
	}()
	if r := closeReasonOf(t, c); r != protocol.ReasonRateLimited {
		t.Fatalf("a ping flood ended with %s, want %s", r, protocol.ReasonRateLimited)
	}
	if err := bystander.Send(1, []byte("still here")); err != nil || bystander.Err() != nil {
		t.Fatalf("the bystander suffered: %v %v", err, bystander.Err())
	}
}

func TestCloudOpsOverBudgetAnswered(t *testing.T) {
	oc := &okCloud{}
	sys := clustertest.Start(t, hostileClientsYAML, clustertest.WithPlugins("lobby-1", oc))
	c := dialWS(t, sys.Server("lobby-1").URL(), nil)
	const ops = 30 // burst 10, then 20 over the budget: within the abuse allowance
	for i := range ops {
		get := cloudwire.Get{Req: uint32(i + 1), Query: cloud.Query{Keys: []cloud.Key{{Primary: "k"}}}}
		payload := protocol.AppendWS(nil, protocol.KindCloudGet, 0, get.AppendTo(nil))
		if err := c.WriteMessage(websocket.BinaryMessage, payload); err != nil {
			t.Fatal(err)
		}
	}
	ok, limited := 0, 0
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for ok+limited < ops {
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("after %d answers and %d rate limited: %v", ok, limited, err)
		}
		f, _ := protocol.DecodeWS(b)
		switch f.Kind {
		case protocol.KindCloudReply:
			ok++
		case protocol.KindCloudResult:
			var r cloudwire.Result
			if err := r.Decode(f.Payload); err != nil || r.Code != cloud.CodeRateLimited {
				t.Fatalf("result %+v %v, want code %s", r, err, cloud.CodeRateLimited)
			}
			limited++
		case protocol.KindClose:
			t.Fatalf("the session ended after %d answers and %d rate limited", ok, limited)
		}
	}
	if limited == 0 || int64(ok) != oc.served.Load() {
		t.Fatalf("%d served, %d rate limited, plugin saw %d", ok, limited, oc.served.Load())
	}
	// The refusals are counted with the clients' cloud operations.
	var counted uint64
	for _, st := range sys.Server("lobby-1").Cluster().CloudOps() {
		if st.Source == "client" && st.Kind == "get" {
			counted = st.Results["rate_limited"]
		}
	}
	if counted != uint64(limited) {
		t.Fatalf("%d rate-limited gets counted, %d answered", counted, limited)
	}
	// Sustained: far past the abuse allowance, the session ends.
	go func() {
		get := cloudwire.Get{Req: 1, Query: cloud.Query{Keys: []cloud.Key{{Primary: "k"}}}}
		payload := protocol.AppendWS(nil, protocol.KindCloudGet, 0, get.AppendTo(nil))
		for range 500 {
			if c.WriteMessage(websocket.BinaryMessage, payload) != nil {
				return
			}
		}
	}()
	if r := closeReasonOf(t, c); r != protocol.ReasonRateLimited {
		t.Fatalf("sustained flood ended with %s, want %s", r, protocol.ReasonRateLimited)
	}
}

// TestClientPortPaths checks that only the configured path upgrades (here
// the default, "/"): a plain request there gets 426, anywhere else 404.
func TestClientPortPaths(t *testing.T) {
	sys := clustertest.Start(t, strings.Replace(hostileClientsYAML, "path: /play, ", "", 1))
	base := "http://" + sys.Server("lobby-1").Addr()
	for path, want := range map[string]int{"/": http.StatusUpgradeRequired, "/play": http.StatusNotFound, "/other/x": http.StatusNotFound} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", path, resp.Status, want)
		}
	}
}

func TestClientOrigins(t *testing.T) {
	sys := clustertest.Start(t, hostileClientsYAML)
	lobby := sys.Server("lobby-1")
	host := strings.TrimPrefix(strings.TrimSuffix(lobby.URL(), "/play"), "ws://")
	for origin, allowed := range map[string]bool{
		"":                          true, // not a browser
		"https://game.example":      true, // listed
		"HTTPS://GAME.EXAMPLE":      true,
		"http://" + host:            true, // same host
		"http://127.0.0.1:1":        true, // same host, another port (the game's web server)
		"http://localhost":          false,
		"https://evil.example":      false,
		"https://game.example.evil": false,
	} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, resp, err := websocket.DefaultDialer.Dial(lobby.URL(), h)
		if c != nil {
			c.Close()
		}
		switch {
		case allowed && err != nil:
			t.Errorf("origin %q refused: %v", origin, err)
		case !allowed && (err == nil || resp == nil || resp.StatusCode != http.StatusForbidden):
			t.Errorf("origin %q: %v, want 403", origin, err)
		}
	}
	sys.WaitFor("the refusal logged", func() bool { return strings.Contains(sys.Logs(), "origin not allowed") })
}

// TestWebSocketProtocolErrorsLogged sends frames that break the WebSocket
// protocol: the client is closed, the plugins see ReasonProtocol, and the
// log says why.
func TestWebSocketProtocolErrorsLogged(t *testing.T) {
	sys := clustertest.Start(t, hostileClientsYAML)
	lobby := sys.Server("lobby-1")
	for name, frame := range map[string][]byte{
		"reserved bits":     {0xF2, 0x80, 0, 0, 0, 0}, // RSV1-3 set, masked, empty
		"bad opcode":        {0x83, 0x80, 0, 0, 0, 0}, // opcode 3 is reserved
		"unmasked":          {0x82, 0x01, 0},          // clients must mask
		"oversized control": append([]byte{0x89, 0xFE, 0, 200, 0, 0, 0, 0}, make([]byte, 200)...),
	} {
		t.Run(name, func(t *testing.T) {
			conn := upgradeRaw(t, lobby.Addr())
			conn.Write(frame)
			// gorilla answers 1002 and closes.
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 4096)
			var got []byte
			for {
				n, err := conn.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
			}
			if !strings.Contains(string(got), "\x03\xea") { // close code 1002
				t.Fatalf("no 1002 close: %q", got)
			}
		})
	}
	sys.WaitFor("protocol errors logged", func() bool {
		return strings.Contains(sys.Logs(), "a client broke the WebSocket protocol")
	})
	if logs := sys.Logs(); !strings.Contains(logs, `"reason":"`+protocol.ReasonProtocol.String()+`"`) {
		t.Fatalf("no %s reason logged:\n%s", protocol.ReasonProtocol, logs)
	}
}

// upgradeRaw opens a WebSocket by hand on a raw TCP connection and reads
// past the 101 response and the welcome.
func upgradeRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /play HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	// The welcome: a short unmasked binary frame.
	var head [2]byte
	if _, err := br.Read(head[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := br.Read(head[1:]); err != nil {
		t.Fatal(err)
	}
	if _, err := br.Discard(int(head[1] & 0x7F)); err != nil {
		t.Fatal(err)
	}
	if br.Buffered() != 0 {
		t.Fatal(errors.New("more than the welcome arrived"))
	}
	conn.SetDeadline(time.Time{})
	return conn
}

// TestClientHandshakeCap holds silent connections to a client port from one
// address: past the cap the server closes them at once, and a game client
// from another address still connects.
func TestClientHandshakeCap(t *testing.T) {
	sys := clustertest.Start(t, hostileClientsYAML)
	lobby := sys.Server("lobby-1")
	var silent []net.Conn
	for range 100 {
		silent = append(silent, hostileDial(t, 2, lobby.Addr()))
	}
	closed := 0
	for _, c := range silent {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			closed++
		}
	}
	if closed == 0 || closed == len(silent) {
		t.Fatalf("%d of %d silent connections from one address closed at once, want some but not all", closed, len(silent))
	}
	sys.WaitFor("the refusal logged", func() bool { return strings.Contains(sys.Logs(), "from this address") })
	if c := lobby.Dial(); c.Err() != nil {
		t.Fatalf("a client from another address: %v", c.Err())
	}
}

// failingHook fails every client message.
type failingHook struct{}

func (failingHook) ClientMessage(plugins.Client, plugins.Message) error {
	return errors.New("always fails")
}

// TestHookFailuresSampled checks that a hook failing for every message a
// client sends logs a bounded number of lines.
func TestHookFailuresSampled(t *testing.T) {
	sys := clustertest.Start(t, hostileClientsYAML, clustertest.WithPlugins("lobby-1", failingHook{}))
	lobby := sys.Server("lobby-1")
	c := lobby.Dial()
	const sent = 10 // the burst: all within the rate limit
	for i := range sent {
		if err := c.Send(uint16(i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	sys.WaitFor("every failure counted", func() bool { return lobby.Cluster().Stats().HookErrors == sent })
	if n := strings.Count(sys.Logs(), "plugin hook failed"); n == 0 || n >= sent {
		t.Fatalf("%d log lines for %d failures, want some but fewer", n, sent)
	}
}
