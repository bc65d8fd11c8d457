package cluster

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
)

// framer claims extension kinds and records what it receives. A server
// frame of kind 80 is answered with kind 81 carrying the same payload; a
// client frame of kind 64 is answered with kind 65.
type framer struct {
	kinds []protocol.Kind
	mu    sync.Mutex
	host  plugins.Host
	got   []string // "server <id> <kind> <payload>" or "client <ref> <kind> <payload>"
	peers [][]plugins.Peer
}

func (f *framer) Start(_ context.Context, h plugins.Host) error {
	f.mu.Lock()
	f.host = h
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
		return s.SendFrame(81, fr.Tag, fr.Payload)
	}
	return nil
}

func (f *framer) ClientFrame(c plugins.Client, fr protocol.Frame) error {
	if string(fr.Payload) == "malformed" {
		return errors.New("malformed")
	}
	f.record("client " + c.Ref().String() + " " + fr.Kind.String() + " " + string(fr.Payload))
	if fr.Kind == 64 {
		return c.SendFrame(65, fr.Tag, fr.Payload)
	}
	return nil
}

func (f *framer) PeersChanged(peers []plugins.Peer) error {
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

func TestExtensionFrames(t *testing.T) {
	h := newHarness(t, clientSystem(config.Clients{}))
	inner := &framer{kinds: []protocol.Kind{80, 82}}
	outer := &framer{kinds: []protocol.Kind{64, 81}}
	rec := newRecorder()
	h.start("g2", "b1", inner)
	a1 := h.start("g1", "a1", outer, rec)
	testutil.WaitFor(t, "link", rec.connectedTo("b1"))
	b1 := rec.peer("b1")

	// Server to server, and the answer back.
	if err := b1.SendFrame(80, 3, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "frame at b1", inner.has("server a1 cloud-srv-post hi"))
	testutil.WaitFor(t, "answer at a1", outer.has("server b1 cloud-srv-release hi"))
	if err := b1.SendFrame(protocol.KindUser, 0, nil); !errors.Is(err, plugins.ErrFrameKind) {
		t.Fatalf("SendFrame(user) = %v", err)
	}

	// Client to its server, the answer back, and a frame routed from the
	// internal server to the client over the link.
	c := dialClient(t, a1, nil)
	if err := c.conn.WriteMessage(websocket.BinaryMessage, protocol.AppendWS(nil, 64, 9, []byte("from client"))); err != nil {
		t.Fatal(err)
	}
	if f := c.next(); f.Kind != 65 || f.Tag != 9 || string(f.Payload) != "from client" {
		t.Fatalf("answer %v %d %q", f.Kind, f.Tag, f.Payload)
	}
	testutil.WaitFor(t, "client frame", outer.has("client "+c.ref.String()+" cloud-post from client"))
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
	if err := inner.host.SendFrameToClient(c.ref, protocol.KindUser, 0, nil); !errors.Is(err, plugins.ErrFrameKind) {
		t.Fatalf("SendFrameToClient(user) = %v", err)
	}

	// A kind nobody claims closes the client as a protocol error; so does
	// a frame its handler rejects.
	c.conn.WriteMessage(websocket.BinaryMessage, protocol.AppendWS(nil, 70, 0, nil))
	if r := c.closeReason(); r != protocol.ReasonProtocol {
		t.Fatalf("unclaimed kind: %s", r)
	}
	c2 := dialClient(t, a1, nil)
	c2.conn.WriteMessage(websocket.BinaryMessage, protocol.AppendWS(nil, 64, 0, []byte("malformed")))
	if r := c2.closeReason(); r != protocol.ReasonProtocol {
		t.Fatalf("rejected frame: %s", r)
	}
	// A frame gone astray to a client that left is answered "gone".
	testutil.WaitFor(t, "c gone", func() bool { _, ok := outer.host.Client(c.ref.ID); return !ok })
	if err := inner.host.SendFrameToClient(c.ref, protocol.KindCloudNotify, 0, nil); err != nil {
		t.Fatal(err)
	}

	// A malformed server frame closes the link, which comes back.
	before := rec.count("connected", "b1")
	if err := b1.SendFrame(82, 0, []byte("malformed")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "relink", func() bool { return rec.count("connected", "b1") > before && b1.State() == plugins.StateConnected })
}

func TestFrameKindClaims(t *testing.T) {
	h := newHarness(t, twoGroups())
	for _, ps := range [][]plugins.Plugin{
		{&framer{kinds: []protocol.Kind{protocol.KindUser}}},
		{&framer{kinds: []protocol.Kind{96}}},
		{&framer{kinds: []protocol.Kind{70}}, &framer{kinds: []protocol.Kind{71, 70}}},
	} {
		_, err := New(Options{System: h.sys, Group: "g2", Registry: h.hub.Connector(), Plugins: ps})
		if !errors.Is(err, plugins.ErrFrameKind) || !errors.Is(err, ErrBadOptions) {
			t.Fatalf("New = %v", err)
		}
	}
}

func TestPeersHandler(t *testing.T) {
	h := newHarness(t, twoGroups())
	p1, p2 := &framer{}, &framer{}
	h.start("g2", "b1", p1)
	s2 := h.start("g2", "b2", p2)
	want := []string{"b1", "b2"}
	testutil.WaitFor(t, "both see both", func() bool {
		return slices.Equal(p1.lastPeers(), want) && slices.Equal(p2.lastPeers(), want)
	})
	s2.Close()
	testutil.WaitFor(t, "b1 sees b2 go", func() bool { return slices.Equal(p1.lastPeers(), []string{"b1"}) })
}

// fakeCloudClient stands in for the cloud memory's caller side: the
// "test-cloud" plugin attaches it to servers whose group connects to a
// group that runs "test-cloud".
type fakeCloudClient struct {
	Group    string
	Settings map[string]any
	sessions []string
	notify   []func(cloud.Notification)
}

func (f *fakeCloudClient) CloudSession(name string, notify func(cloud.Notification)) plugins.CloudMemory {
	f.sessions = append(f.sessions, name)
	f.notify = append(f.notify, notify)
	return fakeSession(name)
}

type fakeSession string

func (fakeSession) Ref() plugins.ClientRef                        { return plugins.ClientRef{} }
func (fakeSession) Post(context.Context, cloud.Key, []byte) error { return nil }
func (fakeSession) Release(context.Context, ...cloud.Key) error   { return nil }
func (fakeSession) Unsubscribe(context.Context, []cloud.Key, ...plugins.ClientRef) error {
	return nil
}
func (fakeSession) Get(context.Context, cloud.Query) (*cloud.Result, error) {
	return nil, nil
}

type noteTaker struct {
	host  plugins.Host
	notes []cloud.Notification
}

func (n *noteTaker) Start(_ context.Context, h plugins.Host) error { n.host = h; return nil }
func (n *noteTaker) CloudNotification(x cloud.Notification) error {
	n.notes = append(n.notes, x)
	return nil
}

func init() {
	plugins.Register(plugins.Info{
		Name: "test-cloud",
		New:  func() plugins.Plugin { return new(struct{}) },
		Attach: func(a plugins.Attachment) (plugins.Plugin, error) {
			fc := &fakeCloudClient{Group: a.Group}
			return fc, a.Spec.Decode(&fc.Settings)
		},
	})
}

func TestAttachedPluginRunsFirst(t *testing.T) {
	var settings yaml.Node
	if err := yaml.Unmarshal([]byte("maxRowBytes: 100"), &settings); err != nil {
		t.Fatal(err)
	}
	// Internal groups only: the plugin is attached the same way on
	// external servers.
	sys := &config.System{
		System: "test",
		Secret: testSecret,
		Groups: []config.Group{
			{Name: "g1", Visibility: config.Internal, ConnectsTo: []string{"g2"}},
			{Name: "g2", Visibility: config.Internal,
				Plugins: []config.Plugin{{Name: "test-cloud", Settings: *settings.Content[0]}}},
			{Name: "g3", Visibility: config.Internal},
		},
	}
	if err := sys.Validate(); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, sys)

	nt := &noteTaker{}
	s := h.start("g1", "a1", nt)
	cm, err := nt.host.CloudMemory()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := nt.host.CloudMemory()
	if cm != again {
		t.Fatal("a second CloudMemory made a new session")
	}
	fc := s.hooks.slots[0].p.(*fakeCloudClient)
	if fc.Group != "g2" || fc.Settings["maxRowBytes"] != 100 || len(fc.sessions) != 1 || fc.notify[0] == nil {
		t.Fatalf("client %+v", fc)
	}
	fc.notify[0](cloud.Notification{Type: cloud.NotifyResync})
	if len(nt.notes) != 1 {
		t.Fatal("notification not delivered to the plugin's hook")
	}
	if _, err := s.Host().CloudMemory(); err != nil || fc.sessions[1] != "embedder" {
		t.Fatalf("embedder session: %v %v", err, fc.sessions)
	}

	if s.hooks.slots[0].name != "test-cloud@g2" {
		t.Fatalf("attached plugin named %q", s.hooks.slots[0].name)
	}

	// The cloud group itself, and unrelated groups, get no attachment.
	nt2 := &noteTaker{}
	h.start("g3", "c1", nt2)
	if _, err := nt2.host.CloudMemory(); !errors.Is(err, plugins.ErrNoCloudMemory) {
		t.Fatalf("CloudMemory on g3 = %v", err)
	}
}

// A group that connects to two groups running the same attaching plugin
// does not start; the error names both groups.
func TestTwoAttachmentsOfOnePlugin(t *testing.T) {
	sys := &config.System{
		System: "test",
		Secret: testSecret,
		Groups: []config.Group{
			{Name: "g1", Visibility: config.Internal, ConnectsTo: []string{"c1", "c2"}},
			{Name: "c1", Visibility: config.Internal, Plugins: []config.Plugin{{Name: "test-cloud"}}},
			{Name: "c2", Visibility: config.Internal, Plugins: []config.Plugin{{Name: "test-cloud"}}},
		},
	}
	h := newHarness(t, sys)
	_, err := New(Options{System: sys, Group: "g1", Registry: h.hub.Connector()})
	if !errors.Is(err, ErrBadOptions) || !strings.Contains(err.Error(), `"c1"`) || !strings.Contains(err.Error(), `"c2"`) {
		t.Fatalf("New = %v", err)
	}
}
