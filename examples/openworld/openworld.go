// Package openworld is the example system of the repository's cluster.yaml:
// the open world that the DarkRift 2 clustering documentation takes as its
// example. Players connect to client
// servers over WebSocket and walk a map shared by all of them; world servers
// each own some regions of the map and tell players where the players near
// them are; social servers carry chat between players on different client
// servers.
//
// It registers three group plugins by name in init:
//
//   - gateway (Gateway), on the client servers (external): holds its players'
//     state and routes their moves to the world servers, and their chat to a
//     social server;
//   - world (World), on the world servers (internal): tracks the players in
//     and next to the regions it owns and pushes their positions to the
//     players near them, whatever client server those are on;
//   - chat (Chat), on the social servers (internal): relays chat lines to
//     every client server, which hands them to its players.
//
// Player is the client side, on top of package client; package bots runs
// many simulated players and adds the "bots" command and the dev-mode bots to
// a binary's command line.
//
// # The map
//
// The map is a square of MapSize units split into vertical strips, the
// regions: region = x × regions / MapSize, with regions from the world
// plugin's settings (the world servers tell each gateway, see TagMap). Each
// region is owned by one world server, chosen by rendezvous hashing (Owner)
// over the world servers a gateway is linked to right now: when a world
// server joins or leaves, only the regions it gains or loses move, and every
// gateway that sees the same world servers picks the same owners.
//
// A player sees the players of its own region and of the two adjacent ones.
// The gateway, which holds the player's state (its source of truth), sends
// each of the player's moves to the owner of the player's region (as owner)
// and to the owners of the two adjacent regions (as watchers), so a world
// server knows every player in and next to its regions. A world server
// pushes each move to the players it owns within one region of the mover:
// every nearby player gets each position exactly once, from the owner of its
// own region, and far players get nothing.
//
// When the world servers change, each gateway recomputes the owners and
// hands over: it sends each affected player's full state (TagEnter) to the
// world servers that now need it and a leave (TagLeave) to those that no
// longer do, so players keep their positions.
//
// # Messages
//
// All integers are big-endian. A ref is a ClientRef as the protocol encodes
// it (u8 n, n bytes server ID, u64 client ID); str8 is u8 n and n bytes of
// UTF-8; text is the rest of the message, UTF-8.
//
// Between a player and the system (game-client messages):
//
//	tag  1 move       player → gateway   i32 x, i32 y, u64 stamp (Step)
//	tag  2 chat       player → gateway   text (1 to MaxChatBytes bytes)
//	tag  3 ping       player → gateway   u64 stamp
//	tag 10 welcome    gateway → player   i32 x, i32 y, str8 name (Welcome)
//	tag 11 moved      world → player     ref, i32 x, i32 y, u16 region, u64 stamp (Position)
//	tag 12 view       world → player     u16 n, n × (ref, i32 x, i32 y, u16 region)
//	tag 13 gone       world → player     ref
//	tag 14 chat line  gateway → player   ref, str8 name, text (ChatLine)
//	tag 15 pong       world → player     u64 stamp
//
// A stamp is chosen by the player (Player uses its own clock) and comes back
// unchanged: in the moved message of the player's own move, and in the pong.
//
// Between servers (plugin messages):
//
//	tag 1 enter      gateway → world    ref, i32 x, i32 y, u8 flags, u64 stamp (Update)
//	tag 2 move       gateway → world    ref, i32 x, i32 y, u8 flags, u64 stamp (Update)
//	tag 3 leave      gateway → world    ref, u8 handover (Leave)
//	tag 4 ping       gateway → world    ref, u64 stamp (Ping): pong the stamp to ref
//	tag 5 map        world → gateway    u16 regions (sent when a gateway links)
//	tag 6 chat       gateway → social   ref, str8 name, text (ChatLine)
//	tag 7 chat line  social → gateway   ref, str8 name, text (ChatLine)
//
// flags bit 0 set means the receiving world server owns the player's region;
// clear, it only watches it. A leave with handover 1 moves the player to
// another world server without announcing it; with 0 the player is gone
// from the neighbourhood and the world tells the players near it (gone).
//
// A studio builds its own binary the same way as cmd/openworld: a main that
// imports its plugin packages for their side effect and calls cli.Main.
package openworld

import (
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/rendezvous"
)

// Tags of the plugin messages between servers.
const (
	TagEnter    uint16 = 1 // gateway → world: a player's full state (Update)
	TagMove     uint16 = 2 // gateway → world: a player moved (Update)
	TagLeave    uint16 = 3 // gateway → world: forget a player (Leave)
	TagPing     uint16 = 4 // gateway → world: pong a stamp to a player (Ping)
	TagMap      uint16 = 5 // world → gateway: the number of regions
	TagChat     uint16 = 6 // gateway → social: a player's chat line (ChatLine)
	TagChatLine uint16 = 7 // social → gateway: a chat line for every player (ChatLine)
)

// Tags of the messages between a player and the system.
const (
	PlayerMove     uint16 = 1  // player → gateway: Step
	PlayerChat     uint16 = 2  // player → gateway: text
	PlayerPing     uint16 = 3  // player → gateway: u64 stamp
	PlayerWelcome  uint16 = 10 // gateway → player: Welcome
	PlayerMoved    uint16 = 11 // world → player: Position
	PlayerView     uint16 = 12 // world → player: positions
	PlayerGone     uint16 = 13 // world → player: ref
	PlayerChatLine uint16 = 14 // gateway → player: ChatLine
	PlayerPong     uint16 = 15 // world → player: u64 stamp
)

// Group names the plugins talk to.
const (
	WorldGroup  = "world"  // the gateway sends moves to this upstream group
	SocialGroup = "social" // the gateway sends chat to this upstream group
)

// MapSize is the side of the square map, in units. Positions run from 0 to
// MapSize-1 on both axes.
const MapSize = 4096

// MaxRegions is the largest regions setting of the world plugin.
const MaxRegions = 4096

// Limits on text.
const (
	MaxChatBytes = 256 // longest chat text
	MaxNameBytes = 32  // longest player name
)

// ClientRef is the system-wide address of a player.
type ClientRef = plugins.ClientRef

func init() {
	plugins.Register(plugins.Info{Name: "gateway", New: func() plugins.Plugin { return new(Gateway) }})
	plugins.Register(plugins.Info{Name: "world", New: func() plugins.Plugin { return NewWorld() }})
	plugins.Register(plugins.Info{Name: "chat", New: func() plugins.Plugin { return new(Chat) }})
}

// Point is a position on the map.
type Point struct {
	X, Y int32
}

// Clamp returns p moved onto the map.
func (p Point) Clamp() Point {
	return Point{clamp(p.X), clamp(p.Y)}
}

// Region returns the region of the map that holds x, for a map split into
// regions strips. x is clamped to the map.
func Region(x int32, regions int) int {
	x = clamp(x)
	return int(int64(x) * int64(regions) / MapSize)
}

// Near reports whether regions a and b are the same or adjacent: whether
// players in them see each other.
func Near(a, b int) bool {
	return a-b <= 1 && b-a <= 1
}

func clamp(v int32) int32 {
	return min(max(v, 0), MapSize-1)
}

// Owner returns the server among candidates that owns key (a region, or a
// player's refKey) by rendezvous hashing (rendezvous.Pick): every caller
// that sees the same candidates picks the same owner, in any order, and
// removing a candidate moves only the keys it owned. Owner returns the
// zero S (nil for an interface) when candidates is empty.
func Owner[S rendezvous.Identified](candidates []S, key int) S {
	return rendezvous.Pick(candidates, rendezvous.Hash64(uint64(key)))
}

// refKey spreads players over servers (Owner's key) by their ref.
func refKey(r ClientRef) int { return int(rendezvous.Hash(r.String())) }
