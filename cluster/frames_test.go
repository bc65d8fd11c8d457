package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/plugins/extension"
	"github.com/cloudrift/cloudrift/protocol"
)

// extSystem is g1 (external) connecting to g2 (internal), plus g3, which
// relates to neither.
const extSystem = `
system: test
secret: test-secret-of-sufficient-length
groups:
  - {name: g1, visibility: external, connectsTo: [g2]}
  - {name: g2, visibility: internal}
  - {name: g3, visibility: internal}
`

// framer claims extension kinds and records what it receives. A server
// frame of kind 80 is answered with kind 81 carrying the same payload; a
// client frame of kind 64 is answered with kind 65.
type framer struct {
	kinds []protocol.Kind
	mu    sync.Mutex
	host  extension.Host
	got   []string // "server <id> <kind> <payload>" or "client <ref> <kind> <payload>"
	peers [][]extension.Peer
	links atomic.Int32 // ServerConnected calls
}

func (f *framer) Start(_ context.Context, h plugins.Host) error {
	eh, ok := extension.Of(h)
	if !ok {
		return errors.New("not an extension host")
	}
	f.mu.Lock()
	f.host = eh
	f.mu.Unlock()
	return nil
}

func (f *framer) FrameKinds() []protocol.Kind { return f.kinds }

func (f *framer) ServerFrame(s plugins.RemoteServer, fr protocol.Frame) error {
	if string(fr.Payload) == "malformed" {
		return errors.New("malformed")
	}
	f.record("server " + s.ID() + " " + fr.Kind.String() + " " + string(fr.Payload))
	if fr.Kind == 80 {
		return f.host.SendFrame(s, 81, fr.Tag, fr.Payload)
	}
	return nil
}

func (f *framer) ClientFrame(c plugins.Client, fr protocol.Frame) error {
	if string(fr.Payload) == "malformed" {
		return errors.New("malformed")
	}
	f.record("client " + c.Ref().String() + " " + fr.Kind.String() + " " + string(fr.Payload))
	if fr.Kind == 64 {
		return f.host.SendClientFrame(c, 65, fr.Tag, fr.Payload)
	}
	return nil
}

func (f *framer) ServerConnected(plugins.RemoteServer) error {
	f.links.Add(1)
	return nil
}

func (f *framer) PeersChanged(peers []extension.Peer) error {
	f.mu.Lock()
	f.peers = append(f.peers, peers)
	f.mu.Unlock()
	return nil
}

func (f *framer) record(s string) {
	f.mu.Lock()
	f.got = append(f.got, s)
	f.mu.Unlock()
}

func (f *framer) has(s string) func() bool {
	return func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return slices.Contains(f.got, s)
	}
}

func (f *framer) lastPeers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.peers) == 0 {
		return nil
	}
	var ids []string
	for _, p := range f.peers[len(f.peers)-1] {
		ids = append(ids, p.ID)
	}
	return ids
}

// rawClient is a bare WebSocket game client: the SDK sends no extension
// kinds of a test's choosing.
type rawClient struct {
	t    *testing.T
	conn *websocket.Conn
	ref  plugins.ClientRef
}

// dialRaw connects to srv and reads its welcome.
func dialRaw(t *testing.T, srv *clustertest.Server) *rawClient {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(srv.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn}
	var w protocol.ClientWelcome
	if f := c.next(); f.Kind != protocol.KindClientWelcome || w.Decode(f.Payload) != nil {
		t.Fatalf("first message %s, not a welcome", f.Kind)
	}
	c.ref = plugins.ClientRef{Server: w.ServerID, ID: w.ClientID}
	return c
}

func (c *rawClient) write(kind protocol.Kind, tag uint16, payload []byte) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.BinaryMessage, protocol.AppendWS(nil, kind, tag, payload)); err != nil {
		c.t.Fatal(err)
	}
}

// next reads one message, failing the test after the kit's patience.
func (c *rawClient) next() protocol.Frame {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(clustertest.DefaultPatience))
	_, b, err := c.conn.ReadMessage()
	if err != nil {
		c.t.Fatalf("client read: %v", err)
	}
	f, err := protocol.DecodeWS(b)
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

// closeReason reads until the server's Close and returns its reason.
func (c *rawClient) closeReason() protocol.Reason {
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

func TestExtensionFrames(t *testing.T) {
	sys := clustertest.New(t, extSystem)
	inner := &framer{kinds: []protocol.Kind{80, 82}}
	outer := &framer{kinds: []protocol.Kind{64, 81}}
	sys.StartServer("g2", "b1", inner)
	a1 := sys.StartServer("g1", "a1", outer)
	sys.WaitLinked("g1")
	g2, err := a1.Host().RemoteGroup("g2")
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := g2.Server("b1")

	// Server to server, and the answer back.
	if err := outer.host.SendFrame(b1, 80, 3, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	sys.WaitFor("frame at b1", inner.has("server a1 cloud-srv-post hi"))
	sys.WaitFor("answer at a1", outer.has("server b1 cloud-srv-release hi"))
	if err := outer.host.SendFrame(b1, protocol.KindUser, 0, nil); !errors.Is(err, extension.ErrFrameKind) {
		t.Fatalf("SendFrame(user) = %v", err)
	}

	// Client to its server, the answer back, and a frame routed from the
	// internal server to the client over the link.
	c := dialRaw(t, a1)
	c.write(64, 9, []byte("from client"))
	if f := c.next(); f.Kind != 65 || f.Tag != 9 || string(f.Payload) != "from client" {
		t.Fatalf("answer %v %d %q", f.Kind, f.Tag, f.Payload)
	}
	sys.WaitFor("client frame", outer.has("client "+c.ref.String()+" cloud-post from client"))
	if err := inner.host.SendFrameToClient(c.ref, protocol.KindCloudNotify, 4, []byte("pushed")); err != nil {
		t.Fatal(err)
	}
	if f := c.next(); f.Kind != protocol.KindCloudNotify || f.Tag != 4 || string(f.Payload) != "pushed" {
		t.Fatalf("routed %v %d %q", f.Kind, f.Tag, f.Payload)
	}
	if err := outer.host.SendFrameToClients([]plugins.ClientRef{c.ref, c.ref}, protocol.KindCloudResync, 5, []byte("twice")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if f := c.next(); f.Kind != protocol.KindCloudResync || !bytes.Equal(f.Payload, []byte("twice")) {
			t.Fatalf("shared %v %q", f.Kind, f.Payload)
		}
	}
	if err := inner.host.SendFrameToClient(c.ref, protocol.KindUser, 0, nil); !errors.Is(err, extension.ErrFrameKind) {
		t.Fatalf("SendFrameToClient(user) = %v", err)
	}
	client, _ := outer.host.Client(c.ref.ID)
	if err := outer.host.SendClientFrame(client, protocol.KindUser, 0, nil); !errors.Is(err, extension.ErrFrameKind) {
		t.Fatalf("SendClientFrame(user) = %v", err)
	}

	// A kind nobody claims closes the client as a protocol error; so does
	// a frame its handler rejects.
	c.write(70, 0, nil)
	if r := c.closeReason(); r != protocol.ReasonProtocol {
		t.Fatalf("unclaimed kind: %s", r)
	}
	c2 := dialRaw(t, a1)
	c2.write(64, 0, []byte("malformed"))
	if r := c2.closeReason(); r != protocol.ReasonProtocol {
		t.Fatalf("rejected frame: %s", r)
	}
	// A frame gone astray to a client that left is answered "gone".
	sys.WaitFor("c gone", func() bool { _, ok := outer.host.Client(c.ref.ID); return !ok })
	if err := inner.host.SendFrameToClient(c.ref, protocol.KindCloudNotify, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := outer.host.SendClientFrame(client, protocol.KindCloudNotify, 0, nil); !errors.Is(err, plugins.ErrClientGone) {
		t.Fatalf("SendClientFrame to a gone client = %v", err)
	}

	// A malformed server frame closes the link, which comes back.
	before := outer.links.Load()
	if err := outer.host.SendFrame(b1, 82, 0, []byte("malformed")); err != nil {
		t.Fatal(err)
	}
	sys.WaitFor("relink", func() bool { return outer.links.Load() > before && b1.State() == plugins.StateConnected })
}

func TestFrameKindClaims(t *testing.T) {
	sys := clustertest.New(t, extSystem)
	for _, ps := range [][]plugins.Plugin{
		{&framer{kinds: []protocol.Kind{protocol.KindUser}}},
		{&framer{kinds: []protocol.Kind{96}}},
		{&framer{kinds: []protocol.Kind{70}}, &framer{kinds: []protocol.Kind{71, 70}}},
	} {
		if err := newErr(sys, "g2", ps...); !errors.Is(err, extension.ErrFrameKind) || !errors.Is(err, cluster.ErrBadOptions) {
			t.Fatalf("New = %v", err)
		}
	}
}

func TestPeersHandler(t *testing.T) {
	sys := clustertest.New(t, extSystem)
	p1, p2 := &framer{}, &framer{}
	sys.StartServer("g2", "b1", p1)
	sys.StartServer("g2", "b2", p2)
	want := []string{"b1", "b2"}
	sys.WaitFor("both see both", func() bool {
		return slices.Equal(p1.lastPeers(), want) && slices.Equal(p2.lastPeers(), want)
	})
	sys.Server("b2").Kill()
	sys.WaitFor("b1 sees b2 go", func() bool { return slices.Equal(p1.lastPeers(), []string{"b1"}) })
}
