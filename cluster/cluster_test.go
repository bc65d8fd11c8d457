package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/registry"
)

// linked is a running system with b1 of g2 and a1 of g1, which host the
// recorders r2 and r1.
type linked struct {
	sys    *clustertest.System
	a1, b1 *clustertest.Server
	r1, r2 *recorder
}

// startLinked starts b1 then a1 in a system of cfg, and returns once each
// has seen the other connect.
func startLinked(t *testing.T, cfg *config.System) *linked {
	t.Helper()
	l := &linked{sys: newSystem(t, cfg), r1: newRecorder(), r2: newRecorder()}
	l.b1 = l.sys.StartServer("g2", "b1", l.r2)
	l.a1 = l.sys.StartServer("g1", "a1", l.r1)
	testutil.WaitFor(t, "a1 connected to b1", l.r1.connectedTo("b1"))
	testutil.WaitFor(t, "b1 connected to a1", l.r2.connectedTo("a1"))
	return l
}

func TestTwoGroupsSeeEachOther(t *testing.T) {
	l := startLinked(t, twoGroups())
	r1, r2 := l.r1, l.r2

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
	l := startLinked(t, twoGroups())
	r1, r2 := l.r1, l.r2

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
	l := startLinked(t, twoGroups())
	r1 := l.r1

	rb2 := newRecorder()
	b2 := l.sys.StartServer("g2", "b2", rb2).Cluster()
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
	if !errors.Is(b2.Shutdown(ctx), cluster.ErrServerClosed) {
		t.Error("second Shutdown should return ErrServerClosed")
	}
}

func TestKilledLinkReconnects(t *testing.T) {
	l := startLinked(t, twoGroups())
	r1 := l.r1

	// Kill the connection under the link, as a reset would.
	cluster.BreakLinks(l.b1.Cluster())
	testutil.WaitFor(t, "reconnect", func() bool { return r1.count("connected", "b1") == 2 && r1.connectedTo("b1")() })
	if got := r1.eventsFor("b1"); !slices.Equal(got, []string{"joined", "connected", "disconnected", "connected"}) {
		t.Errorf("events = %v", got)
	}
	sendAll(t, r1.peer("b1"), 10, "after")
}

func TestRefusals(t *testing.T) {
	l := startLinked(t, twoGroups())
	r1, r2 := l.r1, l.r2
	addr := l.b1.Addr()
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
			return strings.Contains(l.sys.Logs(), `"reason":"`+reason.String()+`"`)
		})
	}

	t.Run("wrong secret", func(t *testing.T) {
		c := rawConn(t, addr)
		authenticate(t, c, hello("test", "g1", "intruder", 7), "the-wrong-secret-entirely")
		if r := closeReason(t, c); r != protocol.ReasonAuth {
			t.Fatalf("reason %s, want %s", r, protocol.ReasonAuth)
		}
		wantLogged(t, protocol.ReasonAuth)
		stillServing(t)
	})
	t.Run("wrong secret server", func(t *testing.T) {
		// A whole server with the wrong secret: it refuses the acceptor's
		// challenge and never links.
		bad := twoGroups()
		bad.Secret = "another-secret-of-enough-length"
		rb := newRecorder()
		l.sys.StartServerWith(cluster.Options{System: bad, Group: "g1", ID: "a-bad", Plugins: []plugins.Plugin{rb}})
		testutil.WaitFor(t, "dialer gave up", func() bool {
			return strings.Contains(l.sys.Logs(), "peer refuses this server for good")
		})
		if rb.count("connected", "b1") != 0 || r2.count("connected", "a-bad") != 0 {
			t.Fatal("a server with the wrong secret linked")
		}
		stillServing(t)
	})
	// Connections whose first bytes the acceptor refuses (none at all, for
	// the handshake timeout), and the reason its Close gives.
	for _, tc := range []struct {
		name   string
		first  []byte
		want   protocol.Reason
		logged bool
	}{
		{"wrong system", helloFrame("other", "g1", "x1"), protocol.ReasonWrongSystem, true},
		{"group does not connect to acceptor", helloFrame("test", "g3", "x2"), protocol.ReasonNotDownstream, true},
		{"no handshake within deadline", nil, protocol.ReasonHandshakeTimeout, true},
		{"garbage bytes", []byte{0, 0, 0, 9, 0xee, 1, 2, 3, 4, 5, 6, 7, 8}, protocol.ReasonProtocol, false},
		{"oversized frame", []byte{0x10, 0, 0, 0, byte(protocol.KindHello), 0, 0}, protocol.ReasonFrameTooLarge, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawConn(t, addr)
			if tc.first != nil {
				c.Write(tc.first)
			}
			if r := closeReason(t, c); r != tc.want {
				t.Fatalf("reason %s, want %s", r, tc.want)
			}
			if tc.logged {
				wantLogged(t, tc.want)
			}
			stillServing(t)
		})
	}
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
		a := l.sys.StartServer("g1", "a2")
		c := rawConn(t, a.Addr())
		c.Write(helloFrame("test", "g1", "x3"))
		if r := closeReason(t, c); r != protocol.ReasonProtocol {
			t.Fatalf("reason %s", r)
		}
		stillServing(t)
	})
	t.Run("oversized frame on a live link", func(t *testing.T) {
		// A link whose peer sends a frame over the limit is closed with a
		// reason; the peer's dialer reconnects.
		before := r1.count("connected", "b1")
		if !cluster.QueueRawOnLink(l.b1.Cluster(), "a1", []byte{0x10, 0, 0, 0, byte(protocol.KindUser), 0, 0}) {
			t.Fatal("b1 has no link with a1")
		}
		testutil.WaitFor(t, "relink", func() bool { return r1.count("connected", "b1") == before+1 && r1.connectedTo("b1")() })
		testutil.WaitFor(t, "relink at b1", r2.connectedTo("a1"))
		sent = len(r2.messages("a1"))
		stillServing(t)
	})
}

func TestHookFailuresAreContained(t *testing.T) {
	l := startLinked(t, twoGroups())
	r1, r2 := l.r1, l.r2
	r2.setOnMessage(func(_ plugins.RemoteServer, m plugins.Message) error {
		switch string(m.Payload) {
		case "panic":
			panic("boom")
		case "error":
			return errors.New("plugin said no")
		}
		return nil
	})
	p := r1.peer("b1")
	for _, s := range []string{"panic", "error", "ok"} {
		if err := p.Send(1, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, "3 messages", func() bool { return len(r2.messages("a1")) == 3 })
	st := l.b1.Cluster().Stats()
	if st.HookPanics != 1 || st.HookErrors != 1 {
		t.Fatalf("stats %+v, want one panic and one error", st)
	}
	if r1.count("disconnected", "b1") != 0 {
		t.Fatal("a failing hook took the link down")
	}
}

// A peer that reads slowly is busy, not stuck: when the link's queue is
// full, Send refuses the message with ErrBusy, the link stays up, and every
// message accepted arrives in order.
func TestFullQueueRefusesSendsAndKeepsLink(t *testing.T) {
	cfg := twoGroups()
	cfg.Links.QueueBytes = 64 << 10
	// Far longer than the test's pause, so only a full queue is tested.
	cfg.Links.Heartbeat = config.Duration(time.Second)
	cfg.Links.Timeout = config.Duration(10 * time.Second)
	l := startLinked(t, cfg)
	r1 := l.r1
	block := make(chan struct{})
	var once sync.Once
	l.r2.setOnMessage(func(plugins.RemoteServer, plugins.Message) error {
		once.Do(func() { <-block })
		return nil
	})
	p := r1.peer("b1")
	var err error
	sent := 0
	for ; sent < 1_000_000; sent++ {
		payload := fmt.Appendf(make([]byte, 0, 1024), "m-%d", sent)
		if err = p.Send(uint16(sent%65536), payload[:cap(payload)]); err != nil {
			break
		}
	}
	close(block)
	if !errors.Is(err, plugins.ErrBusy) {
		t.Fatalf("Send = %v, want ErrBusy", err)
	}
	testutil.WaitFor(t, "every accepted message", func() bool { return len(l.r2.messages("a1")) == sent })
	for i, m := range l.r2.messages("a1") {
		if want := fmt.Sprintf("m-%d", i); m.Tag != uint16(i%65536) || !bytes.HasPrefix(m.Payload, []byte(want+"\x00")) {
			t.Fatalf("message %d: tag %d payload %.12q, want tag %d payload %q", i, m.Tag, m.Payload, uint16(i%65536), want)
		}
	}
	if n := r1.count("disconnected", "b1"); n != 0 {
		t.Fatalf("the link went down %d times", n)
	}
	if err := p.Send(1, []byte("after")); err != nil {
		t.Fatalf("Send after the queue drained = %v", err)
	}
	if st := l.a1.Cluster().Stats(); st.SendsRefused == 0 || st.BusySends == 0 {
		t.Fatalf("stats %+v, want busy and refused sends counted", st)
	}
}

func TestIncarnationReplacesServer(t *testing.T) {
	l := startLinked(t, twoGroups())
	r1 := l.r1
	old := r1.peer("b1")
	// b1 crashes and restarts under the same ID (a new incarnation).
	l.b1.Kill()
	l.b1.Restart(newRecorder())
	testutil.WaitFor(t, "new incarnation linked", func() bool {
		p := r1.peer("b1")
		return p != nil && p.Incarnation() == l.b1.Incarnation() && p.State() == plugins.StateConnected
	})
	if old.State() != plugins.StateLeft {
		t.Fatalf("old incarnation state %s, want left", old.State())
	}
	if err := old.Send(1, nil); !errors.Is(err, plugins.ErrNotConnected) {
		t.Fatalf("Send to old incarnation = %v", err)
	}
}

func TestShutdownTellsPeersAndStopsPlugins(t *testing.T) {
	sys := newSystem(t, twoGroups())
	r2 := newRecorder()
	sys.StartServer("g2", "b1", r2)
	st := &stopper{}
	a1 := sys.StartServer("g1", "a1", newRecorder(), st).Cluster()
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
	if !errors.Is(a1.Close(), cluster.ErrServerClosed) {
		t.Fatal("Close after Shutdown should return ErrServerClosed")
	}
}

type stopper struct{ stopped atomic.Bool }

func (s *stopper) Stop(context.Context) error {
	s.stopped.Store(true)
	return nil
}

func TestRegistryBlipKeepsLinks(t *testing.T) {
	l := startLinked(t, twoGroups())
	r1, b1 := l.r1, l.b1.Cluster()

	// The registry forgets b1 (as a restarted Consul agent does) and
	// learns it again well within LeaveGrace: the link must stay up.
	l.sys.Hub().Expire("b1")
	conn := l.sys.Hub().Connector()
	t.Cleanup(func() { conn.Close() })
	self := registry.Member{ID: "b1", Group: "g2", Address: b1.Addr().String(), Incarnation: b1.Incarnation(),
		Meta: map[string]string{"protocol": "1"}}
	if err := conn.Register(context.Background(), self); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * l.sys.Config().Links.LeaveGrace.Duration())
	if got := r1.eventsFor("b1"); !slices.Equal(got, []string{"joined", "connected"}) {
		t.Fatalf("events for b1 after a registry blip: %v", got)
	}
	// Forgotten for longer than the grace: TestRegistryDropKeepsLiveLink.
}
