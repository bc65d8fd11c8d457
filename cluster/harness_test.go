// This file is in package cluster for the tests that must be:
// frames_test.go and hooks_test.go. It is the smallest harness they need,
// a server per call on one registry hub, a recorder of link events and a
// bare WebSocket client; the package cluster_test tests use the
// clustertest kit and their own helpers instead.

package cluster

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/registry/embedded"
)

type harness struct {
	t    *testing.T
	hub  *embedded.Hub
	sys  *config.System
	logs *testutil.Buffer
}

func newHarness(t *testing.T, sys *config.System) *harness {
	return &harness{t: t, hub: embedded.NewHub(), sys: sys, logs: &testutil.Buffer{}}
}

// start runs a server of group with the given plugins (none when empty) and
// closes it when the test ends.
func (h *harness) start(group, id string, ps ...plugins.Plugin) *Server {
	h.t.Helper()
	s := h.newServer(Options{System: h.sys, Group: group, ID: id, Plugins: append([]plugins.Plugin{}, ps...)})
	if err := s.Start(context.Background()); err != nil {
		h.t.Fatalf("Start: %v", err)
	}
	return s
}

// newServer makes a server that is not started yet, with its own registry
// connector; both are closed when the test ends.
func (h *harness) newServer(opts Options) *Server {
	h.t.Helper()
	conn := h.hub.Connector()
	log := zerolog.New(h.logs).With().Timestamp().Logger()
	opts.Registry = conn
	opts.Logger = &log
	s, err := New(opts)
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	h.t.Cleanup(func() {
		s.Close()
		conn.Close()
	})
	return s
}

// recorder is a test plugin that records the link events of its server's
// peers.
type recorder struct {
	mu     sync.Mutex
	events []string // "joined g2/id", "connected g2/id", ...
	peers  map[string]plugins.RemoteServer
}

func newRecorder() *recorder {
	return &recorder{peers: make(map[string]plugins.RemoteServer)}
}

func (r *recorder) record(ev string, s plugins.RemoteServer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev+" "+s.Group()+"/"+s.ID())
	r.peers[s.ID()] = s
	return nil
}

func (r *recorder) ServerJoined(s plugins.RemoteServer) error    { return r.record("joined", s) }
func (r *recorder) ServerLeft(s plugins.RemoteServer) error      { return r.record("left", s) }
func (r *recorder) ServerConnected(s plugins.RemoteServer) error { return r.record("connected", s) }
func (r *recorder) ServerDisconnected(s plugins.RemoteServer, _ error) error {
	return r.record("disconnected", s)
}

// count returns how many times event ev happened for peer id.
func (r *recorder) count(ev, id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if strings.HasPrefix(e, ev+" ") && strings.HasSuffix(e, "/"+id) {
			n++
		}
	}
	return n
}

func (r *recorder) peer(id string) plugins.RemoteServer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peers[id]
}

func (r *recorder) connectedTo(id string) func() bool {
	return func() bool {
		p := r.peer(id)
		return p != nil && p.State() == plugins.StateConnected
	}
}

// wsClient is a bare WebSocket game client.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	ref  plugins.ClientRef
}

// dialClient connects to an external server and reads its welcome.
func dialClient(t *testing.T, s *Server, header http.Header) *wsClient {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+s.Addr().String()+"/", header)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// Answer pings, ignoring a failed pong: the server may already have
	// closed, and its Close message is still to be read.
	conn.SetPingHandler(func(data string) error {
		conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		return nil
	})
	c := &wsClient{t: t, conn: conn}
	f := c.next()
	var w protocol.ClientWelcome
	if f.Kind != protocol.KindClientWelcome || w.Decode(f.Payload) != nil {
		t.Fatalf("first message %s, want a welcome", f.Kind)
	}
	c.ref = plugins.ClientRef{Server: w.ServerID, ID: w.ClientID}
	return c
}

// next reads one message, failing the test on error or after 10 s.
func (c *wsClient) next() protocol.Frame {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := c.conn.ReadMessage()
	if err == nil {
		var f protocol.Frame
		if f, err = protocol.DecodeWS(b); err == nil {
			return f
		}
	}
	c.t.Fatalf("client read: %v", err)
	return protocol.Frame{}
}

// closeReason reads until the server's Close and returns its reason.
func (c *wsClient) closeReason() protocol.Reason {
	c.t.Helper()
	for {
		if f := c.next(); f.Kind == protocol.KindClose {
			var cl protocol.Close
			if err := cl.Decode(f.Payload); err != nil {
				c.t.Fatal(err)
			}
			return cl.Reason
		}
	}
}
