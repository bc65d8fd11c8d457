package openworld

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testRegions splits the test map into strips of 256 units: x / 256 is the
// region.
const testRegions = 16

// regionX returns an x inside region r (of testRegions), off by dx.
func regionX(r int, dx int32) int32 { return int32(r)*MapSize/testRegions + dx }

// recGateway is a Gateway that records why its players left.
type recGateway struct {
	*Gateway
	mu   sync.Mutex
	gone map[uint64]error
}

func (g *recGateway) ClientDisconnected(c plugins.Client, reason error) error {
	err := g.Gateway.ClientDisconnected(c, reason)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gone[c.Ref().ID] = reason
	return err
}

func (g *recGateway) reason(id uint64) (error, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	err, ok := g.gone[id]
	return err, ok
}

// recWorld is a World that records the clients its pushes found gone.
type recWorld struct {
	*World
	mu     sync.Mutex
	failed map[ClientRef][]error
}

func (w *recWorld) ClientSendFailed(ref plugins.ClientRef, err error) error {
	res := w.World.ClientSendFailed(ref, err)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failed[ref] = append(w.failed[ref], err)
	return res
}

// sendFailed returns the errors ClientSendFailed got for ref.
func (w *recWorld) sendFailed(ref ClientRef) []error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.failed[ref])
}

// world is a running open world: social-1, world-1 to world-3 and client-1
// and client-2, in one clustertest system, over loopback.
type world struct {
	t        *testing.T
	sys      *clustertest.System
	gateways []*recGateway // client-1, client-2
	worlds   []*recWorld   // world-1 to world-3
	chat     *Chat
}

func newWorld(t *testing.T) *world {
	t.Helper()
	sys := clustertest.NewSystem(t, &config.System{
		System: "openworld-test",
		Secret: "test-secret-of-sufficient-length",
		Groups: []config.Group{
			{Name: "client", Visibility: config.External, ConnectsTo: []string{WorldGroup, SocialGroup}},
			{Name: WorldGroup, Visibility: config.Internal},
			{Name: SocialGroup, Visibility: config.Internal},
		},
		Links: config.Links{HandshakeTimeout: config.Duration(2 * time.Second)},
	})
	w := &world{t: t, sys: sys, chat: new(Chat)}
	// Upstream groups first, as dev mode starts them.
	sys.StartServer(SocialGroup, "social-1", w.chat)
	for i := 1; i <= 3; i++ {
		rw := &recWorld{World: &World{Regions: testRegions}, failed: make(map[ClientRef][]error)}
		w.worlds = append(w.worlds, rw)
		sys.StartServer(WorldGroup, fmt.Sprintf("world-%d", i), rw)
	}
	for i := 1; i <= 2; i++ {
		rg := &recGateway{Gateway: new(Gateway), gone: make(map[uint64]error)}
		w.gateways = append(w.gateways, rg)
		sys.StartServer("client", fmt.Sprintf("client-%d", i), rg)
	}
	// The servers leave gracefully, the last started first, so that the
	// plugins' stop paths run in every test.
	t.Cleanup(func() {
		ss := slices.Concat(sys.Servers(SocialGroup), sys.Servers(WorldGroup), sys.Servers("client"))
		slices.Reverse(ss)
		for _, s := range ss {
			if s.Running() {
				s.Shutdown()
			}
		}
	})
	for i, g := range w.gateways {
		sys.WaitFor(fmt.Sprintf("client-%d linked to every world and social server", i+1), func() bool {
			st := g.Stats()
			return st.Worlds == 3 && st.Socials == 1 && st.Regions == testRegions
		})
	}
	return w
}

// server returns the cluster server id.
func (w *world) server(id string) *cluster.Server { return w.sys.Server(id).Cluster() }

// url is the WebSocket endpoint of a client server.
func (w *world) url(id string) string { return w.sys.Server(id).URL() }

// ears records the messages a player gets: the refs named in positions and
// views, and the pongs.
type ears struct {
	mu    sync.Mutex
	heard map[ClientRef]int
	pongs int
}

func (l *ears) record(m client.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch m.Tag {
	case PlayerMoved:
		if p, err := ParsePosition(m.Payload); err == nil {
			l.heard[p.Player]++
		}
	case PlayerView:
		ps, _ := ParseView(m.Payload)
		for _, p := range ps {
			l.heard[p.Player]++
		}
	case PlayerPong:
		l.pongs++
	}
}

func (l *ears) count(ref ClientRef) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.heard[ref]
}

func (l *ears) pongCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pongs
}

// join connects a player named name to client server srv at spawn, and
// closes it when the test ends. The returned ears record what it hears.
func (w *world) join(srv, name string, spawn Point) (*Player, *ears) {
	w.t.Helper()
	l := &ears{heard: make(map[ClientRef]int)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := Join(ctx, JoinOptions{URL: w.url(srv), Name: name, Spawn: &spawn, OnMessage: l.record})
	if err != nil {
		w.t.Fatalf("join %s on %s: %v", name, srv, err)
	}
	w.t.Cleanup(func() { p.Close() })
	if p.Name() != name || p.Position() != spawn {
		w.t.Fatalf("%s welcomed as %q at %v, want at %v", name, p.Name(), p.Position(), spawn)
	}
	return p, l
}

// sees reports whether p sees other at pt.
func sees(p *Player, other *Player, pt Point) func() bool {
	return func() bool {
		pos, ok := p.Sees(other.Ref())
		return ok && pos.Point == pt
	}
}

// at reports whether a world server confirmed p at pt.
func at(p *Player, pt Point) func() bool {
	return func() bool { return p.Position() == pt && p.Region() == Region(pt.X, testRegions) }
}

func TestPlayersNearbySeeEachOtherAcrossClientServers(t *testing.T) {
	w := newWorld(t)
	const r = 5
	alice, _ := w.join("client-1", "alice", Point{regionX(r, 100), 1000})
	bob, _ := w.join("client-2", "bob", Point{regionX(r, 200), 3000})         // same region, other client server
	dave, _ := w.join("client-1", "dave", Point{regionX(r+1, 10), 500})       // adjacent region
	carol, heard := w.join("client-2", "carol", Point{regionX(r+8, 0), 1000}) // far away

	testutil.WaitFor(t, "bob sees alice", sees(bob, alice, alice.Position()))
	testutil.WaitFor(t, "alice sees bob", sees(alice, bob, bob.Position()))
	testutil.WaitFor(t, "dave sees alice", sees(dave, alice, alice.Position()))

	to := Point{regionX(r, 150), 1200}
	if err := alice.Move(to.X, to.Y); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "bob sees alice's move", sees(bob, alice, to))
	testutil.WaitFor(t, "dave sees alice's move", sees(dave, alice, to))
	testutil.WaitFor(t, "alice's own move confirmed", at(alice, to))

	// Carol is far. Every world server sends her a pong after it handled
	// alice's move (the pings travel from alice's client server behind the
	// move, on the same links); any position of alice's a world server had
	// pushed to carol would have reached her before its pong.
	worlds, err := w.server("client-1").Host().RemoteGroup(WorldGroup)
	if err != nil {
		t.Fatal(err)
	}
	servers := worlds.Servers()
	for i, s := range servers {
		if err := s.Send(TagPing, AppendPing(nil, Ping{Player: carol.Ref(), Stamp: uint64(i + 1)})); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, "carol's pongs", func() bool { return heard.pongCount() == len(servers) })
	testutil.WaitFor(t, "carol's own position", at(carol, carol.Position()))
	for _, p := range []*Player{alice, bob, dave} {
		if n := heard.count(p.Ref()); n != 0 {
			t.Errorf("carol, far away, heard of %s %d times", p.Name(), n)
		}
	}
	if v := carol.View(); len(v) != 0 {
		t.Errorf("carol sees %v, want nobody", v)
	}
	if _, ok := bob.Sees(carol.Ref()); ok {
		t.Error("bob sees carol, who is far away")
	}
}

func TestChatReachesOtherClientServer(t *testing.T) {
	w := newWorld(t)
	alice, _ := w.join("client-1", "alice", Point{100, 100})
	bob, _ := w.join("client-2", "bob", Point{4000, 4000})
	if err := alice.Chat("hello from alice"); err != nil {
		t.Fatal(err)
	}
	want := ChatLine{From: alice.Ref(), Name: "alice", Text: "hello from alice"}
	for _, p := range []*Player{bob, alice} {
		testutil.WaitFor(t, p.Name()+" gets alice's line", func() bool { return slices.Contains(p.Chats(), want) })
	}
	if n := w.chat.Relayed(); n < 2 {
		t.Errorf("social server relayed %d lines, want one per client server", n)
	}
	if err := alice.Chat(""); !errors.Is(err, ErrBadMessage) {
		t.Errorf("empty chat: %v, want ErrBadMessage", err)
	}
}

func TestWorldServerStopHandsPlayersOver(t *testing.T) {
	w := newWorld(t)
	// A region world-2 owns, away from the edges.
	ids := []id{"world-1", "world-2", "world-3"}
	r := slices.IndexFunc([]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, func(r int) bool { return Owner(ids, r) == "world-2" }) + 1
	if r == 0 {
		t.Fatal("world-2 owns no inner region")
	}
	heir := Owner([]id{"world-1", "world-3"}, r)
	old, next := w.worlds[1], w.worlds[map[id]int{"world-1": 0, "world-3": 2}[heir]]

	alice, _ := w.join("client-1", "alice", Point{regionX(r, 10), 1000})
	bob, _ := w.join("client-2", "bob", Point{regionX(r, 30), 3000})
	for _, p := range []*Player{alice, bob} {
		testutil.WaitFor(t, "world-2 owns "+p.Name(), func() bool {
			res, ok := old.Player(p.Ref())
			return ok && res.Owner && res.Point == p.Position()
		})
	}
	testutil.WaitFor(t, "bob sees alice", sees(bob, alice, alice.Position()))

	w.sys.Server("world-2").Shutdown()

	// The heir holds both players where they were, without them moving.
	for _, p := range []*Player{alice, bob} {
		testutil.WaitFor(t, fmt.Sprintf("%s owns %s at %v", heir, p.Name(), p.Position()), func() bool {
			res, ok := next.Player(p.Ref())
			return ok && res.Owner && res.Point == p.Position()
		})
	}
	if info, ok := w.gateways[0].Player(alice.Ref().ID); !ok || info.Owner != string(heir) || info.Point != alice.Position() {
		t.Errorf("client-1's record of alice: %+v, want owner %s at %v", info, heir, alice.Position())
	}
	if st := w.gateways[0].Stats(); st.Worlds != 2 || st.Handovers == 0 {
		t.Errorf("client-1 after world-2 stopped: %+v, want 2 world servers and handovers", st)
	}

	// They keep playing: moves reach the other player, through the heir.
	to := Point{regionX(r, 50), 1100}
	if err := alice.Move(to.X, to.Y); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "alice's move confirmed", at(alice, to))
	testutil.WaitFor(t, "bob sees alice's move", sees(bob, alice, to))

	// A newcomer finds them where they are.
	dave, _ := w.join("client-1", "dave", Point{regionX(r, 70), 2000})
	testutil.WaitFor(t, "dave sees bob where he stood", sees(dave, bob, bob.Position()))
	testutil.WaitFor(t, "dave sees alice", sees(dave, alice, to))
	testutil.WaitFor(t, "bob sees dave", sees(bob, dave, dave.Position()))
}

func TestClientDisconnectSeenByPlugins(t *testing.T) {
	w := newWorld(t)
	const r = 3
	alice, _ := w.join("client-1", "alice", Point{regionX(r, 10), 1000})
	bob, _ := w.join("client-2", "bob", Point{regionX(r, 20), 2000})
	testutil.WaitFor(t, "bob sees alice", sees(bob, alice, alice.Position()))
	ref := alice.Ref()
	var owner *recWorld
	testutil.WaitFor(t, "a world server owns alice", func() bool {
		for _, ww := range w.worlds {
			if res, ok := ww.Player(ref); ok && res.Owner {
				owner = ww
				return true
			}
		}
		return false
	})

	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	gw := w.gateways[0]
	testutil.WaitFor(t, "client-1 sees alice leave", func() bool { _, ok := gw.reason(ref.ID); return ok })
	reason, _ := gw.reason(ref.ID)
	var ce *plugins.CloseError
	if !errors.As(reason, &ce) || !ce.ByPeer {
		t.Errorf("alice left with %v, want a CloseError from the client", reason)
	}
	if _, ok := gw.Player(ref.ID); ok {
		t.Error("client-1 still has alice")
	}
	testutil.WaitFor(t, "bob told alice is gone", func() bool { _, ok := bob.Sees(ref); return !ok })
	testutil.WaitFor(t, "the world servers forget alice", func() bool {
		for _, ww := range w.worlds {
			if _, ok := ww.Player(ref); ok {
				return false
			}
		}
		return true
	})

	// Sending to her ref now fails: at once on her own server, through
	// ClientSendFailed on a world server.
	if err := w.server("client-1").Host().SendToClient(ref, PlayerPong, AppendStamp(nil, 1)); !errors.Is(err, plugins.ErrClientGone) {
		t.Errorf("client-1 SendToClient to alice after she left: %v, want ErrClientGone", err)
	}
	ownerID := fmt.Sprintf("world-%d", slices.Index(w.worlds, owner)+1)
	before := len(owner.sendFailed(ref))
	if err := w.server(ownerID).Host().SendToClient(ref, PlayerPong, AppendStamp(nil, 1)); err != nil {
		t.Fatalf("%s SendToClient to alice: %v (the error comes later)", ownerID, err)
	}
	testutil.WaitFor(t, ownerID+" told alice is gone", func() bool { return len(owner.sendFailed(ref)) > before })
	if err := owner.sendFailed(ref)[before]; !errors.Is(err, plugins.ErrClientGone) {
		t.Errorf("%s ClientSendFailed(alice): %v, want ErrClientGone", ownerID, err)
	}

	// A player that breaks the protocol is kicked, with that reason.
	eve, _ := w.join("client-2", "eve", Point{regionX(r, 30), 500})
	if err := eve.c.Send(PlayerMove, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-eve.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("eve was not kicked")
	}
	if !errors.Is(eve.Err(), client.ErrKicked) {
		t.Errorf("eve ended with %v, want ErrKicked", eve.Err())
	}
	testutil.WaitFor(t, "client-2 sees eve kicked", func() bool { _, ok := w.gateways[1].reason(eve.Ref().ID); return ok })
	reason, _ = w.gateways[1].reason(eve.Ref().ID)
	if !errors.As(reason, &ce) || ce.Reason != protocol.ReasonKicked || ce.ByPeer {
		t.Errorf("eve left with %v, want ReasonKicked by the server", reason)
	}
}

func TestAuthenticateRefusesBadSpawnAndName(t *testing.T) {
	w := newWorld(t)
	for _, o := range []JoinOptions{
		{URL: w.url("client-1") + "?x=5000"},
		{URL: w.url("client-1") + "?y=abc"},
		{URL: w.url("client-1"), Name: "bad\nname"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p, err := Join(ctx, o)
		cancel()
		if err == nil {
			p.Close()
			t.Errorf("%+v joined", o)
			continue
		}
		if !errors.Is(err, client.ErrAuthRefused) {
			t.Errorf("%+v: %v, want ErrAuthRefused", o, err)
		}
	}
	// Without a name or spawn point the gateway picks both.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := Join(ctx, JoinOptions{URL: w.url("client-2")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if pos := p.Position(); p.Name() == "" || pos != pos.Clamp() {
		t.Errorf("welcomed as %q at %v", p.Name(), pos)
	}
}
