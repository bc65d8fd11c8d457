package openworld

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/plugins"
)

// Defaults of the gateway's settings.
const (
	DefaultPlayers   = 8
	MaxPlayers       = 10000
	DefaultMoveEvery = 100 * time.Millisecond
	DefaultChatEvery = time.Second
)

// Gateway runs on the client servers. Until game clients arrive it simulates
// Players players: every MoveEvery each player takes a step and the gateway
// sends the new position to the world server that owns the player's region;
// every ChatEvery one player (in turn) says something in chat, which goes to
// a social server. The simulation runs on one goroutine the plugin starts in
// Start and ends in Stop.
type Gateway struct {
	// Players is how many players to simulate, 1 to 10000 (default 8).
	Players int `yaml:"players"`
	// MoveEvery is how often every player moves, at least 1ms (default
	// 100ms).
	MoveEvery config.Duration `yaml:"moveEvery"`
	// ChatEvery is how often one player chats, at least 1ms (default 1s).
	ChatEvery config.Duration `yaml:"chatEvery"`

	host    plugins.Host
	regions atomic.Int32 // from the world servers' map message; 0 until known
	cancel  context.CancelFunc
	done    chan struct{} // closed when the simulation goroutine ends

	movesSent, acks, chatSent, chatIn, chatOthers atomic.Uint64
}

var (
	_ plugins.Validator            = (*Gateway)(nil)
	_ plugins.Starter              = (*Gateway)(nil)
	_ plugins.Stopper              = (*Gateway)(nil)
	_ plugins.ServerMessageHandler = (*Gateway)(nil)
)

// NewGateway returns a Gateway with the default settings. The registered
// constructor uses it, so a system file may leave any setting out.
func NewGateway() *Gateway {
	return &Gateway{
		Players:   DefaultPlayers,
		MoveEvery: config.Duration(DefaultMoveEvery),
		ChatEvery: config.Duration(DefaultChatEvery),
	}
}

// Validate checks the settings.
func (g *Gateway) Validate() error {
	if g.Players < 1 || g.Players > MaxPlayers {
		return fmt.Errorf("players is %d: want 1 to %d", g.Players, MaxPlayers)
	}
	if g.MoveEvery.D() < time.Millisecond {
		return fmt.Errorf("moveEvery is %s: want at least 1ms", g.MoveEvery)
	}
	if g.ChatEvery.D() < time.Millisecond {
		return fmt.Errorf("chatEvery is %s: want at least 1ms", g.ChatEvery)
	}
	return nil
}

// Start checks the settings (a Gateway built in Go code was not provisioned)
// and that the server's group connects to the world and social groups, and
// starts the simulation.
func (g *Gateway) Start(_ context.Context, h plugins.Host) error {
	if err := g.Validate(); err != nil {
		return err
	}
	world, err := upstream(h, WorldGroup)
	if err != nil {
		return err
	}
	social, err := upstream(h, SocialGroup)
	if err != nil {
		return err
	}
	g.host = h
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	g.done = make(chan struct{})
	go g.simulate(ctx, world, social)
	return nil
}

func upstream(h plugins.Host, name string) (plugins.RemoteGroup, error) {
	rg, err := h.RemoteGroup(name)
	if err != nil {
		return nil, fmt.Errorf("gateway: group %q must connectsTo %q: %w", h.Group(), name, err)
	}
	if rg.Direction() != plugins.Upstream {
		return nil, fmt.Errorf("gateway: group %q must connectsTo %q, not the other way round", h.Group(), name)
	}
	return rg, nil
}

// Stop ends the simulation and waits for it, at most until ctx ends.
func (g *Gateway) Stop(ctx context.Context) error {
	if g.cancel == nil {
		return nil
	}
	g.cancel()
	select {
	case <-g.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("gateway: simulation did not stop: %w", ctx.Err())
	}
}

type player struct {
	id   uint32
	x, y int32
}

func (g *Gateway) simulate(ctx context.Context, world, social plugins.RemoteGroup) {
	defer close(g.done)
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	players := make([]player, g.Players)
	for i := range players {
		players[i] = player{id: uint32(i + 1), x: rng.Int32N(MapSize), y: rng.Int32N(MapSize)}
	}
	move := time.NewTicker(g.MoveEvery.D())
	defer move.Stop()
	chat := time.NewTicker(g.ChatEvery.D())
	defer chat.Stop()
	var buf []byte
	next := 0 // the player who chats next
	for {
		select {
		case <-ctx.Done():
			return
		case <-move.C:
			regions := int(g.regions.Load())
			worlds := connected(world)
			if regions == 0 || len(worlds) == 0 {
				continue // not linked to the world yet
			}
			for i := range players {
				p := &players[i]
				p.x = clamp(p.x + rng.Int32N(33) - 16)
				p.y = clamp(p.y + rng.Int32N(33) - 16)
				buf = AppendMove(buf[:0], Move{Player: p.id, X: p.x, Y: p.y})
				if Owner(worlds, Region(p.x, regions)).Send(TagMove, buf) == nil {
					g.movesSent.Add(1)
				}
			}
		case <-chat.C:
			socials := connected(social)
			if len(socials) == 0 {
				continue
			}
			p := players[next%len(players)]
			next++
			text := fmt.Sprintf("hello from player %d on %s", p.id, g.host.ServerID())
			buf = AppendChat(buf[:0], ChatLine{Player: p.id, Text: text})
			if Owner(socials, int(p.id)).Send(TagChat, buf) == nil {
				g.chatSent.Add(1)
			}
		}
	}
}

// ServerMessage takes the world's map and acks and the social servers' chat
// lines.
func (g *Gateway) ServerMessage(s plugins.RemoteServer, m plugins.Message) error {
	switch m.Tag {
	case TagMap:
		n, err := parseMap(m.Payload)
		if err != nil {
			return err
		}
		g.regions.Store(int32(n))
	case TagAck:
		if _, err := ParseAck(m.Payload); err != nil {
			return err
		}
		g.acks.Add(1)
	case TagChatLine:
		line, err := ParseChatLine(m.Payload)
		if err != nil {
			return err
		}
		g.chatIn.Add(1)
		if line.Origin != g.host.ServerID() {
			g.chatOthers.Add(1)
		}
		g.host.Logger().Debug().Str("origin", line.Origin).Uint32("player", line.Player).Str("text", line.Text).Msg("chat")
	default:
		return fmt.Errorf("gateway: unexpected tag %d from %s", m.Tag, s.ID())
	}
	return nil
}

// GatewayStats are a gateway's counters.
type GatewayStats struct {
	MovesSent      uint64 // moves handed to a world server
	Acks           uint64 // acks received from world servers
	ChatSent       uint64 // chat lines sent to a social server
	ChatReceived   uint64 // chat lines relayed back by social servers
	ChatFromOthers uint64 // of those, lines from players on other client servers
}

// Stats returns the gateway's counters. It is safe for concurrent use.
func (g *Gateway) Stats() GatewayStats {
	return GatewayStats{
		MovesSent:      g.movesSent.Load(),
		Acks:           g.acks.Load(),
		ChatSent:       g.chatSent.Load(),
		ChatReceived:   g.chatIn.Load(),
		ChatFromOthers: g.chatOthers.Load(),
	}
}
