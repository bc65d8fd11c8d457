package cluster_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/plugins/extension"
)

// witness records, with the time of each, the lifecycle events of the
// remote servers it sees and the peer lists PeersChanged reports.
type witness struct {
	*recorder
	mu    sync.Mutex
	at    map[string]time.Time // "left b1" → when it first happened
	peers [][]string
}

var _ extension.PeersHandler = (*witness)(nil)

func newWitness() *witness {
	return &witness{recorder: newRecorder(), at: make(map[string]time.Time)}
}

func (w *witness) stamp(ev string, s plugins.RemoteServer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.at[ev+" "+s.ID()]; !ok {
		w.at[ev+" "+s.ID()] = time.Now()
	}
}

func (w *witness) ServerLeft(s plugins.RemoteServer) error {
	w.stamp("left", s)
	return w.recorder.ServerLeft(s)
}

func (w *witness) ServerDisconnected(s plugins.RemoteServer, err error) error {
	w.stamp("disconnected", s)
	return w.recorder.ServerDisconnected(s, err)
}

func (w *witness) PeersChanged(peers []extension.Peer) error {
	ids := make([]string, len(peers))
	for i, p := range peers {
		ids[i] = p.ID
	}
	w.mu.Lock()
	w.peers = append(w.peers, ids)
	w.mu.Unlock()
	return nil
}

// when returns when event ev first happened for peer id.
func (w *witness) when(ev, id string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.at[ev+" "+id]
	return t, ok
}

// peerHistory returns every list PeersChanged reported, joined by commas.
func (w *witness) peerHistory() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, len(w.peers))
	for i, p := range w.peers {
		out[i] = strings.Join(p, ",")
	}
	return out
}

// membership is a running system of a1 (g1) linked to b1 and b2 (g2),
// every server hosting a witness, with links.leaveGrace set to grace.
type membership struct {
	sys        *clustertest.System
	a1, b1, b2 *witness
}

func startMembership(t *testing.T, grace time.Duration) *membership {
	t.Helper()
	cfg := twoGroups()
	cfg.Links.LeaveGrace = config.Duration(grace)
	m := &membership{sys: newSystem(t, cfg), a1: newWitness(), b1: newWitness(), b2: newWitness()}
	m.sys.StartServer("g2", "b1", m.b1)
	m.sys.StartServer("g2", "b2", m.b2)
	m.sys.StartServer("g1", "a1", m.a1)
	for _, id := range []string{"b1", "b2"} {
		testutil.WaitFor(t, "a1 connected to "+id, m.a1.connectedTo(id))
	}
	testutil.WaitFor(t, "b1 and b2 see each other", func() bool {
		h1, h2 := m.b1.peerHistory(), m.b2.peerHistory()
		return len(h1) > 0 && h1[len(h1)-1] == "b1,b2" && len(h2) > 0 && h2[len(h2)-1] == "b1,b2"
	})
	return m
}

// wantEvents fails the test unless w recorded exactly want for peer id.
func wantEvents(t *testing.T, who string, w *witness, id string, want ...string) {
	t.Helper()
	if got := w.eventsFor(id); !slices.Equal(got, want) {
		t.Fatalf("%s's events for %s = %v, want %v", who, id, got, want)
	}
}

// A registry answer that drops every member for less than leaveGrace (a
// restarting agent) is a blip: no link closes, nobody leaves, and the
// replicas' peer lists do not change.
func TestRegistryBlackoutChangesNothing(t *testing.T) {
	const grace = 2 * time.Second
	m := startMembership(t, grace)
	peersBefore := [][]string{m.b1.peerHistory(), m.b2.peerHistory()}

	<-m.sys.Hub().Blackout(grace / 10)
	<-m.sys.Hub().Flap("g2", grace/10)
	// Let every grace the blips started run out, with margin.
	time.Sleep(grace + grace/2)

	for _, id := range []string{"b1", "b2"} {
		wantEvents(t, "a1", m.a1, id, "joined", "connected")
		sendAll(t, m.a1.peer(id), 3, "after-blip")
	}
	wantEvents(t, "b1", m.b1, "a1", "joined", "connected")
	wantEvents(t, "b2", m.b2, "a1", "joined", "connected")
	if got := [][]string{m.b1.peerHistory(), m.b2.peerHistory()}; !slices.EqualFunc(got, peersBefore, slices.Equal) {
		t.Fatalf("peer lists through the blips = %v, want unchanged %v", got, peersBefore)
	}
	testutil.WaitFor(t, "messages after the blips", func() bool {
		return len(m.b1.messages("a1")) == 3 && len(m.b2.messages("a1")) == 3
	})
}

// A registry that stops listing a server whose link is alive (its health
// check went critical with the registry node it registered through) does
// not take the link down, however long it lasts: the live link is trusted
// over the registry. Once that link is down, the server is not redialled
// and leaves.
func TestRegistryDropKeepsLiveLink(t *testing.T) {
	const grace = 200 * time.Millisecond
	m := startMembership(t, grace)
	b1 := m.sys.Server("b1").Cluster()

	m.sys.Hub().Hide("b1", time.Hour)
	time.Sleep(5 * grace)
	wantEvents(t, "a1", m.a1, "b1", "joined", "connected")
	wantEvents(t, "b1", m.b1, "a1", "joined", "connected")
	sendAll(t, m.a1.peer("b1"), 5, "hidden")
	testutil.WaitFor(t, "messages to the hidden server", func() bool { return len(m.b1.messages("a1")) == 5 })
	if st := b1.Stats(); st.LinksUp != 1 {
		t.Fatalf("b1 links up = %d, want 1", st.LinksUp)
	}

	// The link drops: the registry's word now stands.
	refused := b1.Stats().Refused
	cluster.BreakLinks(b1)
	testutil.WaitFor(t, "b1 left", func() bool { return m.a1.count("left", "b1") == 1 })
	wantEvents(t, "a1", m.a1, "b1", "joined", "connected", "disconnected", "left")
	// b1 is alive and would accept: a dialer that kept going would be
	// linked again within a few backoff periods (at most 50 ms each).
	time.Sleep(20 * m.sys.Config().Links.BackoffMax.Duration())
	if st := b1.Stats(); st.LinksUp != 0 || st.Refused != refused {
		t.Fatalf("b1 stats after a1 let it go: %+v", st)
	}
	wantEvents(t, "a1", m.a1, "b1", "joined", "connected", "disconnected", "left")
}

// A server that dies (its link drops without a word and it leaves the
// registry) goes Left once the registry has not listed it for leaveGrace,
// not before; its peers drop it from their lists under the same rule; a
// server's own list always holds itself.
func TestAbsentServerLeavesAfterGrace(t *testing.T) {
	const grace = 300 * time.Millisecond
	m := startMembership(t, grace)

	killed := time.Now()
	m.sys.Server("b2").Kill()
	testutil.WaitFor(t, "b2 left", func() bool { return m.a1.count("left", "b2") == 1 })
	wantEvents(t, "a1", m.a1, "b2", "joined", "connected", "disconnected", "left")
	left, _ := m.a1.when("left", "b2")
	if d := left.Sub(killed); d < grace {
		t.Fatalf("b2 left %v after it died, before leaveGrace (%v)", d, grace)
	}
	testutil.WaitFor(t, "b1 drops b2", func() bool {
		h := m.b1.peerHistory()
		return h[len(h)-1] == "b1"
	})
	if h := m.b1.peerHistory(); h[len(h)-2] != "b1,b2" {
		t.Fatalf("b1's peer lists = %v, want b1,b2 then b1", h)
	}

	// b1's own entry vanishing does not take b1 out of its own list.
	m.sys.Hub().Expire("b1")
	time.Sleep(3 * grace)
	if h := m.b1.peerHistory(); h[len(h)-1] != "b1" {
		t.Fatalf("b1's peer lists after its entry expired = %v, want b1 still in", h)
	}
}

// A server that says it is leaving goes at once, whatever the grace, and
// its entry, which the grace still holds, does not make it join again.
func TestLeavingServerGoesAtOnce(t *testing.T) {
	m := startMembership(t, time.Hour)

	m.sys.Server("b2").Shutdown()
	testutil.WaitFor(t, "b2 left", func() bool { return m.a1.count("left", "b2") == 1 })
	// Another member's arrival makes the group's membership apply again
	// with b2 still held in it.
	w3 := newWitness()
	m.sys.StartServer("g2", "b3", w3)
	testutil.WaitFor(t, "a1 connected to b3", m.a1.connectedTo("b3"))
	wantEvents(t, "a1", m.a1, "b2", "joined", "connected", "disconnected", "left")
	g, err := m.a1.host.RemoteGroup("g2")
	if err != nil {
		t.Fatal(err)
	}
	if ids := serverIDs(g.Servers()); !slices.Equal(ids, []string{"b1", "b3"}) {
		t.Fatalf("a1's g2 servers = %v, want [b1 b3]", ids)
	}
}

// A blackout longer than leaveGrace drops the replicas' peers to
// themselves (the registry is their only witness) and brings them back
// when it ends, but every live link stays and no linked server leaves.
func TestLongBlackoutKeepsLinkedServers(t *testing.T) {
	const grace = 200 * time.Millisecond
	m := startMembership(t, grace)

	before := len(m.b1.peerHistory())
	<-m.sys.Hub().Blackout(5 * grace)
	testutil.WaitFor(t, "b1 sees b2 again", func() bool {
		h := m.b1.peerHistory()
		return h[len(h)-1] == "b1,b2"
	})
	if h := m.b1.peerHistory()[before:]; !slices.Equal(h, []string{"b1", "b1,b2"}) {
		t.Fatalf("b1's lists through the blackout = %v, want [b1 b1,b2]", h)
	}
	for _, id := range []string{"b1", "b2"} {
		wantEvents(t, "a1", m.a1, id, "joined", "connected")
	}
	wantEvents(t, "b1", m.b1, "a1", "joined", "connected")
	wantEvents(t, "b2", m.b2, "a1", "joined", "connected")
}
