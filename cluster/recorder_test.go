package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cloudrift/cloudrift/plugins"
)

// recorder is a test plugin that records every event and message.
type recorder struct {
	mu     sync.Mutex
	host   plugins.Host
	events []string // "joined g2/id", "connected g2/id", ...
	msgs   map[string][]plugins.Message
	peers  map[string]plugins.RemoteServer
	// onMessage, when set, runs inside the ServerMessage hook.
	onMessage func(s plugins.RemoteServer, m plugins.Message) error
}

// setOnMessage makes f run inside every later ServerMessage hook.
func (r *recorder) setOnMessage(f func(s plugins.RemoteServer, m plugins.Message) error) {
	r.mu.Lock()
	r.onMessage = f
	r.mu.Unlock()
}

func newRecorder() *recorder {
	return &recorder{msgs: make(map[string][]plugins.Message), peers: make(map[string]plugins.RemoteServer)}
}

var (
	_ plugins.Starter                   = (*recorder)(nil)
	_ plugins.ServerJoinedHandler       = (*recorder)(nil)
	_ plugins.ServerLeftHandler         = (*recorder)(nil)
	_ plugins.ServerConnectedHandler    = (*recorder)(nil)
	_ plugins.ServerDisconnectedHandler = (*recorder)(nil)
	_ plugins.ServerMessageHandler      = (*recorder)(nil)
)

func (r *recorder) Start(_ context.Context, h plugins.Host) error {
	r.mu.Lock()
	r.host = h
	r.mu.Unlock()
	return nil
}

func (r *recorder) record(ev string, s plugins.RemoteServer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev+" "+s.Group()+"/"+s.ID())
	r.peers[s.ID()] = s
}

func (r *recorder) ServerJoined(s plugins.RemoteServer) error {
	r.record("joined", s)
	return nil
}

func (r *recorder) ServerLeft(s plugins.RemoteServer) error {
	r.record("left", s)
	return nil
}

func (r *recorder) ServerConnected(s plugins.RemoteServer) error {
	r.record("connected", s)
	return nil
}

func (r *recorder) ServerDisconnected(s plugins.RemoteServer, _ error) error {
	r.record("disconnected", s)
	return nil
}

func (r *recorder) ServerMessage(s plugins.RemoteServer, m plugins.Message) error {
	r.mu.Lock()
	r.msgs[s.ID()] = append(r.msgs[s.ID()], plugins.Message{Tag: m.Tag, Payload: bytes.Clone(m.Payload)})
	f := r.onMessage
	r.mu.Unlock()
	if f != nil {
		return f(s, m)
	}
	return nil
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

// eventsFor returns the event names recorded for peer id, in order.
func (r *recorder) eventsFor(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if strings.HasSuffix(e, "/"+id) {
			out = append(out, strings.Fields(e)[0])
		}
	}
	return out
}

func (r *recorder) messages(id string) []plugins.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]plugins.Message(nil), r.msgs[id]...)
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

// sendAll sends n numbered messages to p and fails the test on error.
func sendAll(t *testing.T, p plugins.RemoteServer, n int, prefix string) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := p.Send(uint16(i%65536), []byte(fmt.Sprintf("%s-%d", prefix, i))); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
}

// checkInOrder verifies that got holds exactly the n messages sendAll sent.
func checkInOrder(t *testing.T, got []plugins.Message, n int, prefix string) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("got %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		want := fmt.Sprintf("%s-%d", prefix, i)
		if m.Tag != uint16(i%65536) || string(m.Payload) != want {
			t.Fatalf("message %d: tag %d payload %q, want tag %d payload %q", i, m.Tag, m.Payload, uint16(i%65536), want)
		}
	}
}

func serverIDs(ss []plugins.RemoteServer) []string {
	ids := make([]string, len(ss))
	for i, s := range ss {
		ids[i] = s.ID()
	}
	return ids
}
