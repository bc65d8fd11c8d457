// Package openworld is the example system of cluster.yaml: the open world of
// the DarkRift clustering text, reduced for now to enough traffic to show a
// running system.
//
// It registers three group plugins by name in init:
//
//   - gateway, on the client servers (external): simulates a few players
//     moving on the map and chatting;
//   - world, on the world servers: owns regions of the map, acknowledges
//     moves;
//   - chat, on the social servers: relays chat lines to every client server.
//
// # Messages
//
// All integers are big-endian.
//
//	tag 1 move       gateway → world   u32 player, i32 x, i32 y
//	tag 2 ack        world → gateway   u32 player, i32 x, i32 y, u16 region (the accepted position)
//	tag 3 chat       gateway → social  u32 player, text
//	tag 4 chat line  social → gateway  u16 n, n bytes origin server ID, u32 player, text
//	tag 5 map        world → gateway   u16 regions (sent when a client server links)
//
// The map is a square of MapSize units split into vertical strips, the
// regions: region = x × regions / MapSize. A gateway learns the number of
// regions from the world servers (tag 5) and sends each player's moves to the
// world server that owns the player's region, chosen by rendezvous hashing
// (see Owner) over the world servers it is linked to right now. When a world
// server joins or leaves, only the regions it gains or loses move.
//
// A studio builds its own binary the same way: a main that imports its
// plugin packages for their side effect and calls cli.Main (see
// cmd/openworld).
package openworld

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/cloudrift/cloudrift/plugins"
)

// Message tags.
const (
	TagMove     uint16 = 1
	TagAck      uint16 = 2
	TagChat     uint16 = 3
	TagChatLine uint16 = 4
	TagMap      uint16 = 5
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

// ErrBadMessage is wrapped by every decoding error.
var ErrBadMessage = errors.New("openworld: bad message")

func init() {
	plugins.Register(plugins.Info{Name: "gateway", New: func() plugins.Plugin { return NewGateway() }})
	plugins.Register(plugins.Info{Name: "world", New: func() plugins.Plugin { return NewWorld() }})
	plugins.Register(plugins.Info{Name: "chat", New: func() plugins.Plugin { return new(Chat) }})
}

// Region returns the region of the map that holds x, for a map split into
// regions strips. x is clamped to the map.
func Region(x int32, regions int) int {
	x = clamp(x)
	return int(int64(x) * int64(regions) / MapSize)
}

func clamp(v int32) int32 {
	return min(max(v, 0), MapSize-1)
}

// Owner returns the server among candidates that owns region, by
// rendezvous (highest random weight) hashing: each candidate's weight is the
// 64-bit FNV-1a hash of its ID followed by the region as a big-endian u32,
// passed through a bit mixer, and the heaviest wins (ties go to the smaller ID). Every caller that sees
// the same candidates picks the same owner, and removing a candidate moves
// only the regions it owned. Owner returns nil when candidates is empty.
func Owner(candidates []plugins.RemoteServer, region int) plugins.RemoteServer {
	var best plugins.RemoteServer
	var bestW uint64
	for _, s := range candidates {
		w := weight(s.ID(), region)
		if best == nil || w > bestW || (w == bestW && s.ID() < best.ID()) {
			best, bestW = s, w
		}
	}
	return best
}

func weight(id string, region int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(region))
	h.Write(b[:])
	return mix(h.Sum64())
}

// mix is MurmurHash3's 64-bit finalizer. FNV-1a only carries a change in its
// last bytes into the high bits weakly, so without it IDs that differ in one
// character (world-1, world-2) would compare almost by prefix alone and one
// server would own nearly every region.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// connected returns the servers of group g whose link is up.
func connected(g plugins.RemoteGroup) []plugins.RemoteServer {
	all := g.Servers()
	up := all[:0]
	for _, s := range all {
		if s.State() == plugins.StateConnected {
			up = append(up, s)
		}
	}
	return up
}

// Move is a player's position, the payload of a move (tag 1).
type Move struct {
	Player uint32
	X, Y   int32
}

// AppendMove appends the encoding of m to b.
func AppendMove(b []byte, m Move) []byte {
	b = binary.BigEndian.AppendUint32(b, m.Player)
	b = binary.BigEndian.AppendUint32(b, uint32(m.X))
	return binary.BigEndian.AppendUint32(b, uint32(m.Y))
}

// ParseMove decodes a move.
func ParseMove(p []byte) (Move, error) {
	if len(p) != 12 {
		return Move{}, fmt.Errorf("%w: move of %d bytes, want 12", ErrBadMessage, len(p))
	}
	return Move{
		Player: binary.BigEndian.Uint32(p),
		X:      int32(binary.BigEndian.Uint32(p[4:])),
		Y:      int32(binary.BigEndian.Uint32(p[8:])),
	}, nil
}

// Ack is the world's answer to a move (tag 2): the accepted position and its
// region.
type Ack struct {
	Move
	Region uint16
}

// AppendAck appends the encoding of a to b.
func AppendAck(b []byte, a Ack) []byte {
	b = AppendMove(b, a.Move)
	return binary.BigEndian.AppendUint16(b, a.Region)
}

// ParseAck decodes an ack.
func ParseAck(p []byte) (Ack, error) {
	if len(p) != 14 {
		return Ack{}, fmt.Errorf("%w: ack of %d bytes, want 14", ErrBadMessage, len(p))
	}
	m, _ := ParseMove(p[:12])
	return Ack{Move: m, Region: binary.BigEndian.Uint16(p[12:])}, nil
}

// ChatLine is a line of chat. Origin is the client server the player is on;
// it is empty in a chat message (tag 3), whose sender is the origin, and set
// in the chat line a social server relays (tag 4).
type ChatLine struct {
	Origin string
	Player uint32
	Text   string
}

// AppendChat appends the encoding of c as a chat message (tag 3) to b.
func AppendChat(b []byte, c ChatLine) []byte {
	b = binary.BigEndian.AppendUint32(b, c.Player)
	return append(b, c.Text...)
}

// ParseChat decodes a chat message (tag 3); Origin is left empty.
func ParseChat(p []byte) (ChatLine, error) {
	if len(p) < 4 {
		return ChatLine{}, fmt.Errorf("%w: chat of %d bytes, want at least 4", ErrBadMessage, len(p))
	}
	return ChatLine{Player: binary.BigEndian.Uint32(p), Text: string(p[4:])}, nil
}

// AppendChatLine appends the encoding of c as a relayed chat line (tag 4) to
// b. An origin longer than 65535 bytes is an error.
func AppendChatLine(b []byte, c ChatLine) ([]byte, error) {
	if len(c.Origin) > 0xFFFF {
		return b, fmt.Errorf("%w: origin of %d bytes", ErrBadMessage, len(c.Origin))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Origin)))
	b = append(b, c.Origin...)
	return AppendChat(b, c), nil
}

// ParseChatLine decodes a relayed chat line (tag 4).
func ParseChatLine(p []byte) (ChatLine, error) {
	if len(p) < 2 {
		return ChatLine{}, fmt.Errorf("%w: chat line of %d bytes", ErrBadMessage, len(p))
	}
	n := int(binary.BigEndian.Uint16(p))
	if len(p) < 2+n {
		return ChatLine{}, fmt.Errorf("%w: chat line origin of %d bytes in %d", ErrBadMessage, n, len(p)-2)
	}
	c, err := ParseChat(p[2+n:])
	if err != nil {
		return ChatLine{}, err
	}
	c.Origin = string(p[2 : 2+n])
	return c, nil
}

// appendMap encodes the map message (tag 5).
func appendMap(b []byte, regions int) []byte {
	return binary.BigEndian.AppendUint16(b, uint16(regions))
}

// parseMap decodes the map message (tag 5).
func parseMap(p []byte) (int, error) {
	if len(p) != 2 {
		return 0, fmt.Errorf("%w: map of %d bytes, want 2", ErrBadMessage, len(p))
	}
	n := int(binary.BigEndian.Uint16(p))
	if n < 1 || n > MaxRegions {
		return 0, fmt.Errorf("%w: map with %d regions", ErrBadMessage, n)
	}
	return n, nil
}
