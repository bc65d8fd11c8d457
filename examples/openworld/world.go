package openworld

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cloudrift/cloudrift/plugins"
)

// World runs on the world servers. It owns the regions that gateways send it
// moves for, keeps the last position of every player it has seen, and answers
// each move with the accepted (clamped) position.
type World struct {
	// Regions is how many regions the map is split into, 1 to 4096.
	// Default 64.
	Regions int `yaml:"regions"`

	moves atomic.Uint64

	mu      sync.Mutex
	players map[playerKey]Move // last accepted position
}

type playerKey struct {
	server string // the gateway's server ID
	player uint32
}

var (
	_ plugins.Validator              = (*World)(nil)
	_ plugins.ServerConnectedHandler = (*World)(nil)
	_ plugins.ServerMessageHandler   = (*World)(nil)
	_ plugins.ServerLeftHandler      = (*World)(nil)
)

// DefaultRegions is the regions setting's default.
const DefaultRegions = 64

// NewWorld returns a World with the default settings. The registered
// constructor uses it, so a system file may leave regions out.
func NewWorld() *World { return &World{Regions: DefaultRegions} }

// Validate checks the settings.
func (w *World) Validate() error {
	if w.Regions < 1 || w.Regions > MaxRegions {
		return fmt.Errorf("regions is %d: want 1 to %d", w.Regions, MaxRegions)
	}
	return nil
}

// ServerConnected tells a newly linked gateway how the map is split.
func (w *World) ServerConnected(s plugins.RemoteServer) error {
	if s.Direction() != plugins.Downstream {
		return nil
	}
	return s.Send(TagMap, appendMap(nil, w.regions()))
}

// ServerMessage accepts moves and acknowledges them.
func (w *World) ServerMessage(s plugins.RemoteServer, m plugins.Message) error {
	if m.Tag != TagMove {
		return fmt.Errorf("world: unexpected tag %d from %s", m.Tag, s.ID())
	}
	mv, err := ParseMove(m.Payload)
	if err != nil {
		return err
	}
	mv.X, mv.Y = clamp(mv.X), clamp(mv.Y)
	w.mu.Lock()
	if w.players == nil {
		w.players = make(map[playerKey]Move)
	}
	w.players[playerKey{s.ID(), mv.Player}] = mv
	w.mu.Unlock()
	w.moves.Add(1)
	return s.Send(TagAck, AppendAck(nil, Ack{Move: mv, Region: uint16(Region(mv.X, w.regions()))}))
}

// ServerLeft forgets the players of a gateway that is gone.
func (w *World) ServerLeft(s plugins.RemoteServer) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range w.players {
		if k.server == s.ID() {
			delete(w.players, k)
		}
	}
	return nil
}

// regions is the validated Regions, or the default for a World built in Go
// code without it.
func (w *World) regions() int {
	if w.Regions < 1 || w.Regions > MaxRegions {
		return DefaultRegions
	}
	return w.Regions
}

// WorldStats are a world server's counters.
type WorldStats struct {
	Moves   uint64 // moves accepted
	Players int    // players with a known position
}

// Stats returns the world's counters. It is safe for concurrent use.
func (w *World) Stats() WorldStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return WorldStats{Moves: w.moves.Load(), Players: len(w.players)}
}
