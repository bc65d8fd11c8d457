package openworld

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/cloudrift/cloudrift/plugins"
)

// Gateway runs on the client servers. It is the source of truth for its
// players: their names and positions live here, and the world servers only
// hold copies the gateway sends them.
//
// A player connects with an optional name and spawn point in the WebSocket
// URL's query (name=..., x=..., y=...); without them the gateway names it
// player-N and spawns it at random. A bad name or spawn point refuses the
// player (protocol.ReasonAuthRefused). The gateway then welcomes the player
// (PlayerWelcome), routes its moves and pings to the world servers (see the
// package documentation), its chat to a social server, and hands every chat
// line the social servers relay to each of its players. A player that sends
// a malformed move, chat or ping is kicked.
//
// The gateway has no settings. Its state is guarded by one mutex, under
// which it also queues the messages to the world servers (Send never
// blocks), so a player's messages reach each world server in the order of
// the gateway's decisions.
type Gateway struct {
	host plugins.Host // set by Start

	mu      sync.Mutex
	regions int                    // from the world servers' map; 0 until known
	worlds  []plugins.RemoteServer // world servers linked now, sorted by ID
	socials []plugins.RemoteServer // social servers linked now, sorted by ID
	players map[uint64]*player     // by client ID

	moves, chats, handovers, disconnects, sendErrors atomic.Uint64
}

// player is the gateway's record of one of its players.
type player struct {
	c       plugins.Client
	name    string
	pos     Point
	region  int               // -1 until the regions are known
	targets map[string]target // world servers holding the player, by ID
}

// target is a world server that holds a copy of a player.
type target struct {
	s     plugins.RemoteServer
	owner bool // it owns the player's region (else it watches it)
}

// arrival is where and as whom a player enters, from its upgrade query.
type arrival struct {
	name string
	pos  Point
}

var (
	_ plugins.Starter                   = (*Gateway)(nil)
	_ plugins.ClientAuthenticator       = (*Gateway)(nil)
	_ plugins.ClientConnectedHandler    = (*Gateway)(nil)
	_ plugins.ClientMessageHandler      = (*Gateway)(nil)
	_ plugins.ClientDisconnectedHandler = (*Gateway)(nil)
	_ plugins.ServerConnectedHandler    = (*Gateway)(nil)
	_ plugins.ServerDisconnectedHandler = (*Gateway)(nil)
	_ plugins.ServerLeftHandler         = (*Gateway)(nil)
	_ plugins.ServerMessageHandler      = (*Gateway)(nil)
)

// Start checks that the server's group is external and connects to the
// world and social groups.
func (g *Gateway) Start(_ context.Context, h plugins.Host) error {
	for _, name := range []string{WorldGroup, SocialGroup} {
		rg, err := h.RemoteGroup(name)
		if err != nil {
			return fmt.Errorf("gateway: group %q must connectsTo %q: %w", h.Group(), name, err)
		}
		if rg.Direction() != plugins.Upstream {
			return fmt.Errorf("gateway: group %q must connectsTo %q, not the other way round", h.Group(), name)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.host = h
	g.players = make(map[uint64]*player)
	return nil
}

// Authenticate checks the player's name and spawn point in the query.
func (g *Gateway) Authenticate(info plugins.ClientInfo) error {
	_, err := arrivalOf(info)
	return err
}

// arrivalOf reads a player's name and spawn point from its upgrade query:
// ?name=&x=&y=, each optional (a generated name, a random spawn).
func arrivalOf(info plugins.ClientInfo) (arrival, error) {
	a := arrival{
		name: info.Query.Get("name"),
		pos:  Point{rand.Int32N(MapSize), rand.Int32N(MapSize)},
	}
	if a.name == "" {
		a.name = "player-" + strconv.FormatUint(info.Ref.ID&0xFFFF_FFFF, 10)
	}
	if err := CheckName(a.name); err != nil {
		return a, err
	}
	for _, c := range []struct {
		key string
		v   *int32
	}{{"x", &a.pos.X}, {"y", &a.pos.Y}} {
		s := info.Query.Get(c.key)
		if s == "" {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil || n < 0 || n >= MapSize {
			return a, fmt.Errorf("spawn %s=%q: want 0 to %d", c.key, s, MapSize-1)
		}
		*c.v = int32(n)
	}
	return a, nil
}

// ClientConnected welcomes the player and puts it on the map.
func (g *Gateway) ClientConnected(c plugins.Client) error {
	id := c.Ref().ID
	a, err := arrivalOf(c.Info())
	if err != nil {
		c.Kick(err.Error()) // Authenticate already refused such a query
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	p := &player{c: c, name: a.name, pos: a.pos, region: -1}
	g.players[id] = p
	if err := c.Send(PlayerWelcome, AppendWelcome(nil, Welcome{Point: p.pos, Name: p.name})); err != nil {
		return err // gone already; ClientDisconnected follows
	}
	g.routeLocked(p, 0, false)
	return nil
}

// ClientMessage handles a player's move, chat or ping.
func (g *Gateway) ClientMessage(c plugins.Client, m plugins.Message) error {
	switch m.Tag {
	case PlayerMove:
		s, err := ParseStep(m.Payload)
		if err != nil {
			c.Kick(err.Error())
			return nil
		}
		g.moves.Add(1)
		g.mu.Lock()
		defer g.mu.Unlock()
		p := g.players[c.Ref().ID]
		if p == nil {
			return nil
		}
		p.pos = s.Point.Clamp()
		g.routeLocked(p, s.Stamp, true)
	case PlayerChat:
		text := string(m.Payload)
		if err := CheckChat(text); err != nil {
			c.Kick(err.Error())
			return nil
		}
		g.chats.Add(1)
		g.mu.Lock()
		defer g.mu.Unlock()
		p := g.players[c.Ref().ID]
		social := Owner(g.socials, refKey(c.Ref()))
		if p == nil || social == nil {
			return nil // no social server linked: the line is lost
		}
		g.send(social, TagChat, AppendChatLine(nil, ChatLine{From: c.Ref(), Name: p.name, Text: text}))
	case PlayerPing:
		stamp, err := ParseStamp(m.Payload)
		if err != nil {
			c.Kick(err.Error())
			return nil
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		if p := g.players[c.Ref().ID]; p != nil {
			for _, t := range p.targets {
				if t.owner {
					g.send(t.s, TagPing, AppendPing(nil, Ping{Player: c.Ref(), Stamp: stamp}))
				}
			}
		}
	default:
		return fmt.Errorf("gateway: unknown tag %d from player %s", m.Tag, c.Ref())
	}
	return nil
}

// ClientDisconnected takes the player off the map: every world server
// holding it is told it left.
func (g *Gateway) ClientDisconnected(c plugins.Client, reason error) error {
	g.disconnects.Add(1)
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.players[c.Ref().ID]
	if p == nil {
		return nil
	}
	delete(g.players, c.Ref().ID)
	leave := AppendLeave(nil, Leave{Player: c.Ref()})
	for _, t := range p.targets {
		g.send(t.s, TagLeave, leave)
	}
	g.host.Logger().Debug().Str("player", c.Ref().String()).Str("name", p.name).AnErr("reason", reason).Msg("player left")
	return nil
}

// ServerConnected adds a world or social server to those the gateway uses;
// a new world server takes over the regions it now owns.
func (g *Gateway) ServerConnected(s plugins.RemoteServer) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch s.Group() {
	case WorldGroup:
		g.worlds = withServer(g.worlds, s)
		g.rerouteLocked()
	case SocialGroup:
		g.socials = withServer(g.socials, s)
	}
	return nil
}

// ServerDisconnected drops a world or social server; the regions of a world
// server move to the others.
func (g *Gateway) ServerDisconnected(s plugins.RemoteServer, _ error) error {
	g.drop(s)
	return nil
}

// ServerLeft drops a world or social server, like ServerDisconnected.
func (g *Gateway) ServerLeft(s plugins.RemoteServer) error {
	g.drop(s)
	return nil
}

func (g *Gateway) drop(s plugins.RemoteServer) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch s.Group() {
	case WorldGroup:
		var changed bool
		if g.worlds, changed = withoutServer(g.worlds, s); changed {
			g.rerouteLocked()
		}
	case SocialGroup:
		g.socials, _ = withoutServer(g.socials, s)
	}
}

// ServerMessage takes the world servers' map and the social servers' chat
// lines.
func (g *Gateway) ServerMessage(s plugins.RemoteServer, m plugins.Message) error {
	switch m.Tag {
	case TagMap:
		n, err := ParseMap(m.Payload)
		if err != nil {
			return err
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		switch g.regions {
		case n:
		case 0:
			g.regions = n
			g.rerouteLocked()
		default:
			return fmt.Errorf("gateway: world server %s has %d regions, others %d: give every world server the same regions setting", s.ID(), n, g.regions)
		}
	case TagChatLine:
		if _, err := ParseChatLine(m.Payload); err != nil {
			return err
		}
		g.mu.Lock()
		clients := make([]plugins.Client, 0, len(g.players))
		for _, p := range g.players {
			clients = append(clients, p.c)
		}
		g.mu.Unlock()
		for _, c := range clients {
			c.Send(PlayerChatLine, m.Payload) // a player gone meanwhile does not matter
		}
	default:
		return fmt.Errorf("gateway: unexpected tag %d from %s", m.Tag, s.ID())
	}
	return nil
}

// routeLocked sends the player's state where it belongs now: an update to
// the owner of its region and the owners of the adjacent ones (enter to
// those that did not hold it, move to those that did when moved is true),
// and a leave to the world servers that no longer need it. moved says the
// player stepped (the leaves then tell the world servers' players it left
// their neighbourhood); otherwise the world servers changed and the leaves
// are handovers.
func (g *Gateway) routeLocked(p *player, stamp uint64, moved bool) {
	ref := p.c.Ref()
	next := g.targetsLocked(p)
	for id, t := range p.targets {
		if n, ok := next[id]; ok && n.s == t.s {
			continue
		}
		// A world server that is gone forgets the player anyway.
		if t.s.State() == plugins.StateConnected {
			g.send(t.s, TagLeave, AppendLeave(nil, Leave{Player: ref, Handover: !moved}))
		}
	}
	u := Update{Player: ref, Point: p.pos, Stamp: stamp}
	for id, n := range next {
		old, had := p.targets[id]
		u.Owner = n.owner
		switch {
		case !had || old.s != n.s:
			g.send(n.s, TagEnter, AppendUpdate(nil, u))
			if !moved {
				g.handovers.Add(1)
			}
		case moved:
			g.send(n.s, TagMove, AppendUpdate(nil, u))
		case old.owner != n.owner:
			g.send(n.s, TagEnter, AppendUpdate(nil, u))
		}
	}
	p.targets = next
}

// targetsLocked returns the world servers that must hold p now, and sets
// p.region.
func (g *Gateway) targetsLocked(p *player) map[string]target {
	if g.regions == 0 || len(g.worlds) == 0 {
		p.region = -1
		return nil
	}
	r := Region(p.pos.X, g.regions)
	p.region = r
	out := make(map[string]target, 3)
	for q := max(r-1, 0); q <= min(r+1, g.regions-1); q++ {
		s := Owner(g.worlds, q)
		if _, ok := out[s.ID()]; !ok {
			out[s.ID()] = target{s: s}
		}
	}
	o := Owner(g.worlds, r)
	out[o.ID()] = target{s: o, owner: true}
	return out
}

// rerouteLocked routes every player after the world servers or the map
// changed.
func (g *Gateway) rerouteLocked() {
	for _, p := range g.players {
		g.routeLocked(p, 0, false)
	}
}

// send queues a message to s; a failure is counted (the link is down and
// the hooks will reroute).
func (g *Gateway) send(s plugins.RemoteServer, tag uint16, payload []byte) {
	if err := s.Send(tag, payload); err != nil {
		g.sendErrors.Add(1)
		if !errors.Is(err, plugins.ErrNotConnected) {
			g.host.Logger().Warn().Err(err).Str("to", s.ID()).Msg("send failed")
		}
	}
}

// withServer returns list with s in it, replacing an earlier incarnation,
// sorted by ID.
func withServer(list []plugins.RemoteServer, s plugins.RemoteServer) []plugins.RemoteServer {
	i, found := slices.BinarySearchFunc(list, s.ID(), func(e plugins.RemoteServer, id string) int {
		return cmpString(e.ID(), id)
	})
	if found {
		list[i] = s
		return list
	}
	return slices.Insert(list, i, s)
}

// withoutServer returns list without s (this incarnation only) and whether
// it was there.
func withoutServer(list []plugins.RemoteServer, s plugins.RemoteServer) ([]plugins.RemoteServer, bool) {
	i := slices.IndexFunc(list, func(e plugins.RemoteServer) bool { return e == s })
	if i < 0 {
		return list, false
	}
	return slices.Delete(list, i, i+1), true
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// PlayerInfo is what a gateway knows of one of its players.
type PlayerInfo struct {
	Ref  ClientRef
	Name string
	Point
	// Region is the player's region, or -1 while the gateway does not know
	// the map yet.
	Region int
	// Owner is the ID of the world server that owns the player's region;
	// Watchers those of the other world servers holding it, sorted.
	Owner    string
	Watchers []string
}

// Player returns what the gateway knows of its player with this client ID.
// It is safe for concurrent use.
func (g *Gateway) Player(id uint64) (PlayerInfo, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.players[id]
	if p == nil {
		return PlayerInfo{}, false
	}
	info := PlayerInfo{Ref: p.c.Ref(), Name: p.name, Point: p.pos, Region: p.region}
	for id, t := range p.targets {
		if t.owner {
			info.Owner = id
		} else {
			info.Watchers = append(info.Watchers, id)
		}
	}
	slices.Sort(info.Watchers)
	return info, true
}

// GatewayStats are a gateway's figures.
type GatewayStats struct {
	Players     int    // players connected now
	Worlds      int    // world servers linked now
	Socials     int    // social servers linked now
	Regions     int    // regions of the map; 0 until a world server told
	Moves       uint64 // moves received from players
	Chats       uint64 // chat lines received from players
	Handovers   uint64 // players handed to a world server after the world servers changed
	Disconnects uint64 // players that left
	SendErrors  uint64 // messages to servers that could not be queued
}

// Stats returns the gateway's figures. It is safe for concurrent use.
func (g *Gateway) Stats() GatewayStats {
	g.mu.Lock()
	st := GatewayStats{Players: len(g.players), Worlds: len(g.worlds), Socials: len(g.socials), Regions: g.regions}
	g.mu.Unlock()
	st.Moves = g.moves.Load()
	st.Chats = g.chats.Load()
	st.Handovers = g.handovers.Load()
	st.Disconnects = g.disconnects.Load()
	st.SendErrors = g.sendErrors.Load()
	return st
}
