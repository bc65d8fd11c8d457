package openworld

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/registry/embedded"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// system is the open world's topology with fast link timings.
func system(t *testing.T) *config.System {
	t.Helper()
	sys := &config.System{
		System: "openworld-test",
		Secret: "test-secret-of-sufficient-length",
		Groups: []config.Group{
			{Name: "client", Visibility: config.External, ConnectsTo: []string{WorldGroup, SocialGroup}},
			{Name: WorldGroup, Visibility: config.Internal},
			{Name: SocialGroup, Visibility: config.Internal},
		},
		Links: config.Links{
			HandshakeTimeout: config.Duration(time.Second),
			BackoffMin:       config.Duration(10 * time.Millisecond),
			BackoffMax:       config.Duration(100 * time.Millisecond),
		},
	}
	if err := sys.Validate(); err != nil {
		t.Fatal(err)
	}
	return sys
}

// start runs one server hosting p on loopback and stops it when the test
// ends.
func start(t *testing.T, hub *embedded.Hub, sys *config.System, group, id string, p plugins.Plugin) {
	t.Helper()
	conn := hub.Connector()
	s, err := cluster.New(cluster.Options{System: sys, Group: group, ID: id, Registry: conn, Plugins: []plugins.Plugin{p}})
	if err != nil {
		t.Fatalf("New %s: %v", id, err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start %s: %v", id, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown %s: %v", id, err)
		}
		conn.Close()
	})
}

// waitFor polls cond until it holds or 20 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMovesAckedAndChatRelayed(t *testing.T) {
	sys := system(t)
	hub := embedded.NewHub()
	chat := &Chat{}
	worlds := []*World{{Regions: 16}, {Regions: 16}, {Regions: 16}}
	gateways := []*Gateway{NewGateway(), NewGateway()}
	for _, g := range gateways {
		g.Players = 4
		g.MoveEvery = config.Duration(10 * time.Millisecond)
		g.ChatEvery = config.Duration(20 * time.Millisecond)
	}
	// Upstream groups first, as dev mode starts them.
	start(t, hub, sys, SocialGroup, "social-1", chat)
	for i, w := range worlds {
		start(t, hub, sys, WorldGroup, fmt.Sprintf("world-%d", i+1), w)
	}
	for i, g := range gateways {
		start(t, hub, sys, "client", fmt.Sprintf("client-%d", i+1), g)
	}

	for i, g := range gateways {
		waitFor(t, fmt.Sprintf("client-%d: moves acked", i+1), func() bool { return g.Stats().Acks >= 20 })
		waitFor(t, fmt.Sprintf("client-%d: chat from the other client server", i+1), func() bool { return g.Stats().ChatFromOthers > 0 })
	}
	// A world counts a move before it acks it, so reading the acks first
	// gives a lower bound for the moves.
	var acks, moves uint64
	for i, g := range gateways {
		st := g.Stats()
		acks += st.Acks
		if st.Acks > st.MovesSent {
			t.Errorf("client-%d: %d acks for %d moves sent", i+1, st.Acks, st.MovesSent)
		}
		if st.ChatReceived < st.ChatFromOthers {
			t.Errorf("client-%d: %d chat lines received, %d of them from others", i+1, st.ChatReceived, st.ChatFromOthers)
		}
	}
	players := 0
	for _, w := range worlds {
		st := w.Stats()
		moves += st.Moves
		players += st.Players
	}
	if moves < acks {
		t.Errorf("worlds accepted %d moves, gateways saw %d acks", moves, acks)
	}
	if players == 0 {
		t.Error("worlds know no player")
	}
	if chat.Relayed() == 0 {
		t.Error("social server relayed no chat line")
	}
}

// fakeServer is a RemoteServer with only an ID, for Owner.
type fakeServer struct {
	plugins.RemoteServer
	id string
}

func (f fakeServer) ID() string { return f.id }

func servers(ids ...string) []plugins.RemoteServer {
	out := make([]plugins.RemoteServer, len(ids))
	for i, id := range ids {
		out[i] = fakeServer{id: id}
	}
	return out
}

func TestOwnerIsStableAndMovesOnlyLostRegions(t *testing.T) {
	const regions = 256
	all := servers("world-1", "world-2", "world-3")
	reversed := servers("world-3", "world-2", "world-1")
	without2 := servers("world-1", "world-3")
	owned := map[string]int{}
	for r := 0; r < regions; r++ {
		o := Owner(all, r).ID()
		owned[o]++
		if got := Owner(reversed, r).ID(); got != o {
			t.Fatalf("region %d: owner %s, or %s when the list is reversed", r, o, got)
		}
		got := Owner(without2, r).ID()
		if o != "world-2" && got != o {
			t.Errorf("region %d moved from %s to %s when world-2 left", r, o, got)
		}
		if got == "world-2" {
			t.Errorf("region %d owned by world-2, which left", r)
		}
	}
	for _, s := range all {
		if owned[s.ID()] == 0 {
			t.Errorf("%s owns none of %d regions: %v", s.ID(), regions, owned)
		}
	}
	if Owner(nil, 1) != nil {
		t.Error("Owner of no candidates is not nil")
	}
}

func TestRegion(t *testing.T) {
	for _, c := range []struct {
		x       int32
		regions int
		want    int
	}{
		{0, 64, 0}, {MapSize - 1, 64, 63}, {MapSize / 2, 64, 32}, {-5, 64, 0}, {MapSize + 9, 64, 63},
		{MapSize - 1, 1, 0}, {MapSize - 1, MaxRegions, MaxRegions - 1},
	} {
		if got := Region(c.x, c.regions); got != c.want {
			t.Errorf("Region(%d, %d) = %d, want %d", c.x, c.regions, got, c.want)
		}
	}
}

func TestCodecs(t *testing.T) {
	mv := Move{Player: 7, X: -3, Y: 4000}
	if got, err := ParseMove(AppendMove(nil, mv)); err != nil || got != mv {
		t.Errorf("move round trip: %+v, %v", got, err)
	}
	ack := Ack{Move: mv, Region: 4095}
	if got, err := ParseAck(AppendAck(nil, ack)); err != nil || got != ack {
		t.Errorf("ack round trip: %+v, %v", got, err)
	}
	c := ChatLine{Player: 3, Text: "hi there"}
	if got, err := ParseChat(AppendChat(nil, c)); err != nil || got != c {
		t.Errorf("chat round trip: %+v, %v", got, err)
	}
	c.Origin = "client-1"
	b, err := AppendChatLine(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseChatLine(b); err != nil || got != c {
		t.Errorf("chat line round trip: %+v, %v", got, err)
	}
	if _, err := AppendChatLine(nil, ChatLine{Origin: strings.Repeat("x", 1<<16)}); !errors.Is(err, ErrBadMessage) {
		t.Errorf("oversized origin: %v", err)
	}
	if n, err := parseMap(appendMap(nil, 64)); err != nil || n != 64 {
		t.Errorf("map round trip: %d, %v", n, err)
	}
	// Every truncation of a valid message is refused, never a panic.
	for name, parse := range map[string]func([]byte) error{
		"move":      func(p []byte) error { _, err := ParseMove(p); return err },
		"ack":       func(p []byte) error { _, err := ParseAck(p); return err },
		"chat line": func(p []byte) error { _, err := ParseChatLine(p); return err },
		"map":       func(p []byte) error { _, err := parseMap(p); return err },
	} {
		var full []byte
		switch name {
		case "move":
			full = AppendMove(nil, mv)
		case "ack":
			full = AppendAck(nil, ack)
		case "chat line":
			full, _ = AppendChatLine(nil, ChatLine{Origin: "client-1", Player: 1})
		case "map":
			full = appendMap(nil, 8)
		}
		for n := 0; n < len(full); n++ {
			if err := parse(full[:n]); !errors.Is(err, ErrBadMessage) {
				t.Errorf("%s truncated to %d bytes: %v, want ErrBadMessage", name, n, err)
			}
		}
	}
	if _, err := parseMap(appendMap(nil, 0)); !errors.Is(err, ErrBadMessage) {
		t.Errorf("map with 0 regions: %v", err)
	}
}

func TestSettings(t *testing.T) {
	provision := func(name, settings string) (plugins.Plugin, error) {
		var n yaml.Node
		if settings != "" {
			if err := yaml.Unmarshal([]byte(settings), &n); err != nil {
				t.Fatal(err)
			}
		}
		return plugins.Provision(plugins.Spec{Name: name, Settings: n, File: "cluster.yaml", Line: 3})
	}
	p, err := provision("world", "")
	if err != nil || p.(*World).Regions != DefaultRegions {
		t.Errorf("world without settings: %+v, %v", p, err)
	}
	p, err = provision("world", "regions: 4096")
	if err != nil || p.(*World).Regions != 4096 {
		t.Errorf("world regions 4096: %+v, %v", p, err)
	}
	p, err = provision("gateway", "players: 2\nmoveEvery: 50ms")
	if g, ok := p.(*Gateway); err != nil || !ok || g.Players != 2 || g.MoveEvery.D() != 50*time.Millisecond || g.ChatEvery.D() != DefaultChatEvery {
		t.Errorf("gateway settings: %+v, %v", p, err)
	}
	for _, c := range []struct{ name, settings, want string }{
		{"world", "regions: 0", "regions is 0"},
		{"world", "regions: 4097", "regions is 4097"},
		{"world", "region: 8", `unknown key "region"`},
		{"gateway", "players: 0", "players is 0"},
		{"gateway", "chatEvery: 0s", "chatEvery is 0s"},
		{"chat", "rooms: 3", `unknown key "rooms"`},
	} {
		_, err := provision(c.name, c.settings)
		if !errors.Is(err, plugins.ErrSettings) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "cluster.yaml:") {
			t.Errorf("%s %q: %v, want an ErrSettings naming cluster.yaml and %q", c.name, c.settings, err, c.want)
		}
	}
}
