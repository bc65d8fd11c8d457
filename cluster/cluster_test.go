package cluster

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/registry"
)

func TestTwoGroupsSeeEachOther(t *testing.T) {
	h := newHarness(t, twoGroups())
	r2 := newRecorder()
	h.start("g2", "b1", r2)
	r1 := newRecorder()
	h.start("g1", "a1", r1)

	testutil.WaitFor(t, "a1 connected to b1", r1.connectedTo("b1"))
	testutil.WaitFor(t, "b1 connected to a1", r2.connectedTo("a1"))

	if got := r1.eventsFor("b1"); !slices.Equal(got, []string{"joined", "connected"}) {
		t.Errorf("g1 events for b1 = %v, want [joined connected]", got)
	}
	if got := r2.eventsFor("a1"); !slices.Equal(got, []string{"joined", "connected"}) {
		t.Errorf("g2 events for a1 = %v, want [joined connected]", got)
	}
	if d := r1.peer("b1").Direction(); d != plugins.Upstream {
		t.Errorf("b1 seen from g1: direction %s, want upstream", d)
	}
	if d := r2.peer("a1").Direction(); d != plugins.Downstream {
		t.Errorf("a1 seen from g2: direction %s, want downstream", d)
	}

	g, err := r1.host.RemoteGroup("g2")
	if err != nil {
		t.Fatalf("RemoteGroup(g2) from g1: %v", err)
	}
	if g.Direction() != plugins.Upstream || g.Name() != "g2" {
		t.Errorf("g2 from g1: %s %s", g.Name(), g.Direction())
	}
	servers := g.Servers()
	if len(servers) != 1 || servers[0].ID() != "b1" || servers[0].Group() != "g2" {
		t.Fatalf("g2 servers from g1 = %v", servers)
	}
	if _, err := r1.host.RemoteGroup("g1"); !errors.Is(err, plugins.ErrUnrelatedGroup) {
		t.Errorf("RemoteGroup(own group) = %v, want ErrUnrelatedGroup", err)
	}
	if _, err := r1.host.RemoteGroup("g3"); !errors.Is(err, plugins.ErrUnrelatedGroup) {
		t.Errorf("RemoteGroup(unrelated) = %v, want ErrUnrelatedGroup", err)
	}
	if _, err := r1.host.RemoteGroup("nope"); !errors.Is(err, plugins.ErrUnknownGroup) {
		t.Errorf("RemoteGroup(unknown) = %v, want ErrUnknownGroup", err)
	}
	dg, err := r2.host.RemoteGroup("g1")
	if err != nil || dg.Direction() != plugins.Downstream {
		t.Fatalf("RemoteGroup(g1) from g2: %v, %v", dg, err)
	}
	if s, ok := dg.Server("a1"); !ok || s.Direction() != plugins.Downstream {
		t.Errorf("g1.Server(a1) from g2: %v %v", s, ok)
	}
}

func TestMessagesBothWaysInOrder(t *testing.T) {
	const n = 10000
	h := newHarness(t, twoGroups())
	r2 := newRecorder()
	h.start("g2", "b1", r2)
	r1 := newRecorder()
	h.start("g1", "a1", r1)
	testutil.WaitFor(t, "link", r1.connectedTo("b1"))
	testutil.WaitFor(t, "link", r2.connectedTo("a1"))

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sendAll(t, r1.peer("b1"), n, "up") }()
	go func() { defer wg.Done(); sendAll(t, r2.peer("a1"), n, "down") }()
	wg.Wait()
	testutil.WaitFor(t, "all messages at b1", func() bool { return len(r2.messages("a1")) >= n })
	testutil.WaitFor(t, "all messages at a1", func() bool { return len(r1.messages("b1")) >= n })
	// Let any duplicate arrive before checking for exactly n.
	time.Sleep(50 * time.Millisecond)
	checkInOrder(t, r2.messages("a1"), n, "up")
	checkInOrder(t, r1.messages("b1"), n, "down")
}

func TestJoinAndLeave(t *testing.T) {
	h := newHarness(t, twoGroups())
	b1 := h.start("g2", "b1")
	r1 := newRecorder()
	h.start("g1", "a1", r1)
	testutil.WaitFor(t, "a1 → b1", r1.connectedTo("b1"))

	rb2 := newRecorder()
	b2 := h.start("g2", "b2", rb2)
	testutil.WaitFor(t, "a1 → b2", r1.connectedTo("b2"))
	testutil.WaitFor(t, "b2 sees a1", rb2.connectedTo("a1"))

	g, _ := r1.host.RemoteGroup("g2")
	if ids := serverIDs(g.Servers()); !slices.Equal(ids, []string{"b1", "b2"}) {
		t.Fatalf("g2 servers = %v, want [b1 b2]", ids)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b2.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	testutil.WaitFor(t, "b2 left", func() bool { return r1.count("left", "b2") == 1 })
	if got := r1.eventsFor("b2"); !slices.Equal(got, []string{"joined", "connected", "disconnected", "left"}) {
		t.Errorf("events for b2 = %v, want [joined connected disconnected left]", got)
	}
	err := r1.peer("b2").Send(1, []byte("x"))
	if !errors.Is(err, plugins.ErrNotConnected) {
		t.Errorf("Send to a server that left = %v, want ErrNotConnected", err)
	}
	if r1.peer("b2").State() != plugins.StateLeft {
		t.Errorf("state of b2 = %s, want left", r1.peer("b2").State())
	}
	if ids := serverIDs(g.Servers()); !slices.Equal(ids, []string{"b1"}) {
		t.Fatalf("g2 servers after b2 left = %v, want [b1]", ids)
	}
	if !errors.Is(b2.Shutdown(ctx), ErrServerClosed) {
		t.Error("second Shutdown should return ErrServerClosed")
	}
	_ = b1
}

func serverIDs(ss []plugins.RemoteServer) []string {
	ids := make([]string, len(ss))
	for i, s := range ss {
		ids[i] = s.ID()
	}
	return ids
}

func TestKilledLinkReconnects(t *testing.T) {
	h := newHarness(t, twoGroups())
	b1 := h.start("g2", "b1")
	r1 := newRecorder()
	h.start("g1", "a1", r1)
	testutil.WaitFor(t, "link", r1.connectedTo("b1"))

	// Kill the connection under the link, as a reset would.
	for _, l := range b1.liveLinks() {
		l.conn.Close()
	}
	testutil.WaitFor(t, "reconnect", func() bool { return r1.count("connected", "b1") == 2 && r1.connectedTo("b1")() })
	if got := r1.eventsFor("b1"); !slices.Equal(got, []string{"joined", "connected", "disconnected", "connected"}) {
		t.Errorf("events = %v", got)
	}
	sendAll(t, r1.peer("b1"), 10, "after")
}

func TestRemovedPeerIsNotRedialled(t *testing.T) {
	h := newHarness(t, twoGroups())
	b1 := h.start("g2", "b1")
	r1 := newRecorder()
	h.start("g1", "a1", r1)
	testutil.WaitFor(t, "link", r1.connectedTo("b1"))

	h.hub.Expire("b1")
	testutil.WaitFor(t, "b1 left", func() bool { return r1.count("left", "b1") == 1 })
	// b1 is alive and would accept: a dialer that kept going would be
	// linked again within a few backoff periods (at most 50 ms each).
	accepted := b1.Stats().Refused
	time.Sleep(20 * h.sys.Links.BackoffMax.D())
	if n := r1.count("connected", "b1"); n != 1 {
		t.Fatalf("b1 connected %d times after removal, want 1", n)
	}
	if st := b1.Stats(); st.LinksUp != 0 || st.Refused != accepted {
		t.Fatalf("b1 stats after removal: %+v", st)
	}
}

// rawConn dials addr as a bare TCP client.
func rawConn(t *testing.T, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// closeReason reads until a Close frame and returns its reason, or fails.
func closeReason(t *testing.T, c net.Conn) protocol.Reason {
	t.Helper()
	rd := protocol.NewReader(c, protocol.DefaultMaxFrame)
	for {
		f, err := rd.Next()
		if err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		if f.Kind == protocol.KindClose {
			var cl protocol.Close
			if err := cl.Decode(f.Payload); err != nil {
				t.Fatal(err)
			}
			return cl.Reason
		}
	}
}

func hello(sys, group, id string) (protocol.Hello, []byte) {
	nonce, _ := protocol.NewNonce()
	h := protocol.Hello{Version: protocol.Version, System: sys, Group: group, ServerID: id, Incarnation: 7, Nonce: nonce}
	return h, h.AppendTo(nil)
}

func TestRefusals(t *testing.T) {
	h := newHarness(t, twoGroups())
	r2 := newRecorder()
	b1 := h.start("g2", "b1", r2)
	r1 := newRecorder()
	h.start("g1", "a1", r1)
	testutil.WaitFor(t, "link", r1.connectedTo("b1"))
	addr := b1.Addr()
	sent := 0
	stillServing := func(t *testing.T) {
		t.Helper()
		sendAll(t, r1.peer("b1"), 5, "alive")
		sent += 5
		testutil.WaitFor(t, "messages on the good link", func() bool { return len(r2.messages("a1")) == sent })
	}
	wantLogged := func(t *testing.T, reason protocol.Reason) {
		t.Helper()
		testutil.WaitFor(t, "log of "+reason.String(), func() bool {
			return strings.Contains(h.logs.String(), `"reason":"`+reason.String()+`"`)
		})
	}

	t.Run("wrong secret", func(t *testing.T) {
		c := rawConn(t, addr)
		_, hb := hello("test", "g1", "intruder")
		c.Write(protocol.AppendFrame(nil, protocol.KindHello, 0, hb))
		rd := protocol.NewReader(c, protocol.DefaultMaxFrame)
		f, err := rd.Next()
		if err != nil || f.Kind != protocol.KindChallenge {
			t.Fatalf("want challenge, got %v %v", f.Kind, err)
		}
		var ch protocol.Challenge
		if err := ch.Decode(f.Payload); err != nil {
			t.Fatal(err)
		}
		auth := protocol.Auth{MAC: protocol.AuthMAC([]byte("the-wrong-secret-entirely"), hb, ch.AppendTo(nil))}
		c.Write(protocol.AppendFrame(nil, protocol.KindAuth, 0, auth.AppendTo(nil)))
		if r := closeReason(t, c); r != protocol.ReasonAuth {
			t.Fatalf("reason %s, want %s", r, protocol.ReasonAuth)
		}
		wantLogged(t, protocol.ReasonAuth)
		stillServing(t)
	})
	t.Run("wrong secret server", func(t *testing.T) {
		// A whole server with the wrong secret: the acceptor refuses its
		// auth and it never links.
		bad := twoGroups()
		bad.Secret = "another-secret-of-enough-length"
		rb := newRecorder()
		h.startWith(Options{System: bad, Group: "g1", ID: "a-bad", Plugins: []plugins.Plugin{rb}})
		testutil.WaitFor(t, "dialer gave up", func() bool {
			return strings.Contains(h.logs.String(), "peer refuses this server for good")
		})
		if rb.count("connected", "b1") != 0 || r2.count("connected", "a-bad") != 0 {
			t.Fatal("a server with the wrong secret linked")
		}
		stillServing(t)
	})
	t.Run("wrong system", func(t *testing.T) {
		c := rawConn(t, addr)
		_, hb := hello("other", "g1", "x1")
		c.Write(protocol.AppendFrame(nil, protocol.KindHello, 0, hb))
		if r := closeReason(t, c); r != protocol.ReasonWrongSystem {
			t.Fatalf("reason %s", r)
		}
		wantLogged(t, protocol.ReasonWrongSystem)
		stillServing(t)
	})
	t.Run("group does not connect to acceptor", func(t *testing.T) {
		c := rawConn(t, addr)
		_, hb := hello("test", "g3", "x2")
		c.Write(protocol.AppendFrame(nil, protocol.KindHello, 0, hb))
		if r := closeReason(t, c); r != protocol.ReasonNotDownstream {
			t.Fatalf("reason %s", r)
		}
		wantLogged(t, protocol.ReasonNotDownstream)
		stillServing(t)
	})
	t.Run("no handshake within deadline", func(t *testing.T) {
		c := rawConn(t, addr)
		if r := closeReason(t, c); r != protocol.ReasonHandshakeTimeout {
			t.Fatalf("reason %s", r)
		}
		wantLogged(t, protocol.ReasonHandshakeTimeout)
		stillServing(t)
	})
	t.Run("garbage bytes", func(t *testing.T) {
		c := rawConn(t, addr)
		c.Write([]byte{0, 0, 0, 9, 0xee, 1, 2, 3, 4, 5, 6, 7, 8})
		if r := closeReason(t, c); r != protocol.ReasonProtocol {
			t.Fatalf("reason %s", r)
		}
		stillServing(t)
	})
	t.Run("oversized frame", func(t *testing.T) {
		c := rawConn(t, addr)
		c.Write([]byte{0x10, 0, 0, 0, byte(protocol.KindHello), 0, 0})
		if r := closeReason(t, c); r != protocol.ReasonFrameTooLarge {
			t.Fatalf("reason %s", r)
		}
		wantLogged(t, protocol.ReasonFrameTooLarge)
		stillServing(t)
	})
	t.Run("websocket client on a server port", func(t *testing.T) {
		c := rawConn(t, addr)
		c.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
		buf := make([]byte, 512)
		n, _ := c.Read(buf)
		if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 400") {
			t.Fatalf("answer %q, want an HTTP 400", buf[:n])
		}
		wantLogged(t, protocol.ReasonClientProtocol)
		stillServing(t)
	})
	t.Run("server dials an external port", func(t *testing.T) {
		a := h.start("g1", "a2")
		c := rawConn(t, a.Addr())
		_, hb := hello("test", "g1", "x3")
		c.Write(protocol.AppendFrame(nil, protocol.KindHello, 0, hb))
		if r := closeReason(t, c); r != protocol.ReasonProtocol {
			t.Fatalf("reason %s", r)
		}
		stillServing(t)
	})
	t.Run("oversized frame on a live link", func(t *testing.T) {
		// A link whose peer sends a frame over the limit is closed with a
		// reason; the peer's dialer reconnects.
		before := r1.count("connected", "b1")
		var l *link
		for _, cand := range b1.liveLinks() {
			if cand.r.id == "a1" {
				l = cand
			}
		}
		l.mu.Lock()
		l.pending = append(l.pending, 0x10, 0, 0, 0, byte(protocol.KindUser), 0, 0)
		l.mu.Unlock()
		l.wake <- struct{}{}
		testutil.WaitFor(t, "relink", func() bool { return r1.count("connected", "b1") == before+1 && r1.connectedTo("b1")() })
		testutil.WaitFor(t, "relink at b1", r2.connectedTo("a1"))
		sent = len(r2.messages("a1"))
		stillServing(t)
	})
}

func TestHookFailuresAreContained(t *testing.T) {
	h := newHarness(t, twoGroups())
	r2 := newRecorder()
	r2.onMessage = func(_ plugins.RemoteServer, m plugins.Message) error {
		switch string(m.Payload) {
		case "panic":
			panic("boom")
		case "error":
			return errors.New("plugin said no")
		}
		return nil
	}
	b1 := h.start("g2", "b1", r2)
	r1 := newRecorder()
	h.start("g1", "a1", r1)
	testutil.WaitFor(t, "link", r1.connectedTo("b1"))
	p := r1.peer("b1")
	for _, s := range []string{"panic", "error", "ok"} {
		if err := p.Send(1, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, "3 messages", func() bool { return len(r2.messages("a1")) == 3 })
	st := b1.Stats()
	if st.HookPanics != 1 || st.HookErrors != 1 {
		t.Fatalf("stats %+v, want one panic and one error", st)
	}
	if r1.count("disconnected", "b1") != 0 {
		t.Fatal("a failing hook took the link down")
	}
}

func TestSlowPeerIsClosed(t *testing.T) {
	sys := twoGroups()
	sys.Links.QueueBytes = 64 << 10
	h := newHarness(t, sys)
	block := make(chan struct{})
	var once sync.Once
	r2 := newRecorder()
	r2.onMessage = func(plugins.RemoteServer, plugins.Message) error {
		once.Do(func() { <-block })
		return nil
	}
	h.start("g2", "b1", r2)
	r1 := newRecorder()
	h.start("g1", "a1", r1)
	testutil.WaitFor(t, "link", r1.connectedTo("b1"))
	p := r1.peer("b1")
	payload := make([]byte, 1024)
	var err error
	for i := 0; i < 1_000_000 && err == nil; i++ {
		err = p.Send(2, payload)
	}
	close(block)
	if !errors.Is(err, plugins.ErrSlowPeer) {
		t.Fatalf("Send = %v, want ErrSlowPeer", err)
	}
	testutil.WaitFor(t, "slow peer logged", func() bool {
		return strings.Contains(h.logs.String(), `"reason":"slow peer"`)
	})
	testutil.WaitFor(t, "relinked", func() bool { return r1.count("connected", "b1") == 2 })
}

func TestIncarnationReplacesServer(t *testing.T) {
	h := newHarness(t, twoGroups())
	b1 := h.start("g2", "b1")
	r1 := newRecorder()
	h.start("g1", "a1", r1)
	testutil.WaitFor(t, "link", r1.connectedTo("b1"))
	old := r1.peer("b1")
	// b1 crashes and restarts under the same ID (a new incarnation).
	b1.Close()
	nb1 := h.start("g2", "b1")
	testutil.WaitFor(t, "new incarnation linked", func() bool {
		p := r1.peer("b1")
		return p != nil && p.Incarnation() == nb1.Incarnation() && p.State() == plugins.StateConnected
	})
	if old.State() != plugins.StateLeft {
		t.Fatalf("old incarnation state %s, want left", old.State())
	}
	if err := old.Send(1, nil); !errors.Is(err, plugins.ErrNotConnected) {
		t.Fatalf("Send to old incarnation = %v", err)
	}
}

func TestShutdownTellsPeersAndStopsPlugins(t *testing.T) {
	h := newHarness(t, twoGroups())
	r2 := newRecorder()
	h.start("g2", "b1", r2)
	st := &stopper{}
	r1 := newRecorder()
	a1 := h.start("g1", "a1", r1, st)
	testutil.WaitFor(t, "link", r2.connectedTo("a1"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a1.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !st.stopped.Load() {
		t.Fatal("Stop hook did not run")
	}
	testutil.WaitFor(t, "a1 left at b1", func() bool { return r2.count("left", "a1") == 1 })
	select {
	case <-a1.Done():
	default:
		t.Fatal("Done not closed after Shutdown")
	}
	if !errors.Is(a1.Close(), ErrServerClosed) {
		t.Fatal("Close after Shutdown should return ErrServerClosed")
	}
}

type stopper struct{ stopped atomic.Bool }

func (s *stopper) Stop(context.Context) error {
	s.stopped.Store(true)
	return nil
}

// rawLink completes a real handshake as server id of group g1 with the
// test secret, and returns the connection and its reader.
func rawLink(t *testing.T, addr net.Addr, id string, inc uint64) (net.Conn, *protocol.Reader) {
	t.Helper()
	c := rawConn(t, addr)
	nonce, _ := protocol.NewNonce()
	hl := protocol.Hello{Version: protocol.Version, System: "test", Group: "g1", ServerID: id, Incarnation: inc, Nonce: nonce}
	hb := hl.AppendTo(nil)
	c.Write(protocol.AppendFrame(nil, protocol.KindHello, 0, hb))
	rd := protocol.NewReader(c, protocol.DefaultMaxFrame)
	f, err := rd.Next()
	if err != nil || f.Kind != protocol.KindChallenge {
		t.Fatalf("want challenge: %v %v", f.Kind, err)
	}
	var ch protocol.Challenge
	if err := ch.Decode(f.Payload); err != nil {
		t.Fatal(err)
	}
	body := ch.AppendTo(nil)
	auth := protocol.Auth{MAC: protocol.AuthMAC([]byte(testSecret), hb, body)}
	c.Write(protocol.AppendFrame(nil, protocol.KindAuth, 0, auth.AppendTo(nil)))
	f, err = rd.Next()
	if err != nil || f.Kind != protocol.KindWelcome {
		t.Fatalf("want welcome: %v %v", f.Kind, err)
	}
	var w protocol.Welcome
	if err := w.Decode(f.Payload); err != nil || !protocol.VerifyMAC(w.MAC, protocol.WelcomeMAC([]byte(testSecret), hb, body)) {
		t.Fatalf("acceptor MAC does not verify: %v", err)
	}
	return c, rd
}

func TestDuplicateLinkReplacesOld(t *testing.T) {
	h := newHarness(t, twoGroups())
	r2 := newRecorder()
	b1 := h.start("g2", "b1", r2)
	c1, _ := rawLink(t, b1.Addr(), "x9", 42)
	testutil.WaitFor(t, "x9 connected", r2.connectedTo("x9"))
	_, rd2 := rawLink(t, b1.Addr(), "x9", 42)
	if r := closeReason(t, c1); r != protocol.ReasonReplaced {
		t.Fatalf("old link closed with %s, want %s", r, protocol.ReasonReplaced)
	}
	testutil.WaitFor(t, "second connect", func() bool { return r2.count("connected", "x9") == 2 })
	if got := r2.eventsFor("x9"); !slices.Equal(got, []string{"joined", "connected", "disconnected", "connected"}) {
		t.Fatalf("events %v", got)
	}
	// The new link carries messages.
	if err := r2.peer("x9").Send(5, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := rd2.Next()
		if err != nil {
			t.Fatal(err)
		}
		if f.Kind == protocol.KindUser {
			if f.Tag != 5 || string(f.Payload) != "hi" {
				t.Fatalf("got tag %d %q", f.Tag, f.Payload)
			}
			break
		}
	}
}

func TestSilentLinkTimesOut(t *testing.T) {
	h := newHarness(t, twoGroups())
	r2 := newRecorder()
	b1 := h.start("g2", "b1", r2)
	c, _ := rawLink(t, b1.Addr(), "mute", 1)
	testutil.WaitFor(t, "linked", r2.connectedTo("mute"))
	// The raw peer never reads or answers pings; the acceptor must close
	// the link once it has been silent past the timeout.
	if r := closeReason(t, c); r != protocol.ReasonHeartbeatTimeout {
		t.Fatalf("reason %s, want %s", r, protocol.ReasonHeartbeatTimeout)
	}
	testutil.WaitFor(t, "left", func() bool { return r2.count("left", "mute") == 1 })
}

func TestRegistryBlipKeepsLinks(t *testing.T) {
	h := newHarness(t, twoGroups())
	conn := h.hub.Connector()
	t.Cleanup(func() { conn.Close() })
	b1, err := New(Options{System: h.sys, Group: "g2", ID: "b1", Registry: conn, Plugins: []plugins.Plugin{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b1.Close() })
	r1 := newRecorder()
	h.start("g1", "a1", r1)
	testutil.WaitFor(t, "link", r1.connectedTo("b1"))

	// The registry forgets b1 (as a restarted Consul agent does) and
	// learns it again well within LeaveGrace: the link must stay up.
	h.hub.Expire("b1")
	self := registry.Member{ID: "b1", Group: "g2", Address: b1.Addr().String(), Incarnation: b1.Incarnation(),
		Meta: map[string]string{"protocol": "1"}}
	if err := conn.Register(context.Background(), self); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * h.sys.Links.LeaveGrace.D())
	if got := r1.eventsFor("b1"); !slices.Equal(got, []string{"joined", "connected"}) {
		t.Fatalf("events for b1 after a registry blip: %v", got)
	}

	// Forgotten for longer than the grace: the link closes and b1 leaves.
	h.hub.Expire("b1")
	testutil.WaitFor(t, "b1 left", func() bool { return r1.count("left", "b1") == 1 })
}
