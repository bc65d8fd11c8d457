package openworld

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cloudrift/cloudrift/plugins"
)

// World runs on the world servers. It holds the players the gateways send
// it: those in the regions it owns (as owner) and those in the regions next
// to them (as watcher). On every update it pushes the player's position
// (PlayerMoved, with the player's stamp) to the players it owns within one
// region of it, the mover included when it owns it; it tells the players it
// owns that a player left their neighbourhood (PlayerGone); and it sends a
// player that arrives in one of its regions the positions of everyone near
// it (PlayerView). Pushes go to players on any client server through the
// Host's SendToClients.
//
// It forgets the players of a gateway whose link goes down (the gateway
// hands them over again when it comes back), telling the players near them
// unless the world server itself is shutting down, and a player whose
// client server reports it gone. Its state is guarded by one mutex, under which it
// also queues its pushes (sends never block), so a push never overtakes the
// state it reflects.
type World struct {
	// Regions is how many regions the map is split into, 1 to 4096.
	// Default 64. Every world server of a system must have the same.
	Regions int `yaml:"regions"`

	host plugins.Host // set by Start

	mu       sync.Mutex
	stopping bool // Stop ran: links are closing, announce no departures
	players  map[ClientRef]*resident
	byRegion map[int]map[ClientRef]*resident

	updates, pushes, pushErrors atomic.Uint64
}

// resident is a world server's copy of a player.
type resident struct {
	ref    ClientRef
	pos    Point
	region int
	owner  bool // this server owns the player's region
}

var (
	_ plugins.Validator                 = (*World)(nil)
	_ plugins.Starter                   = (*World)(nil)
	_ plugins.Stopper                   = (*World)(nil)
	_ plugins.ServerConnectedHandler    = (*World)(nil)
	_ plugins.ServerDisconnectedHandler = (*World)(nil)
	_ plugins.ServerLeftHandler         = (*World)(nil)
	_ plugins.ServerMessageHandler      = (*World)(nil)
	_ plugins.ClientSendFailedHandler   = (*World)(nil)
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

// Start checks the settings (a World built in Go code was not provisioned)
// and keeps the host.
func (w *World) Start(_ context.Context, h plugins.Host) error {
	if err := w.Validate(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.host = h
	w.players = make(map[ClientRef]*resident)
	w.byRegion = make(map[int]map[ClientRef]*resident)
	return nil
}

// Stop makes the world server forget quietly the players of the gateways
// whose links close during its shutdown: the gateways hand them over to
// other world servers, and the players near them must not be told they left.
func (w *World) Stop(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopping = true
	return nil
}

// ServerConnected tells a newly linked gateway how the map is split.
func (w *World) ServerConnected(s plugins.RemoteServer) error {
	if s.Direction() != plugins.Downstream {
		return nil
	}
	return s.Send(TagMap, AppendMap(nil, w.Regions))
}

// ServerDisconnected forgets the players of a gateway whose link went down.
func (w *World) ServerDisconnected(s plugins.RemoteServer, _ error) error {
	w.forgetServer(s)
	return nil
}

// ServerLeft forgets the players of a gateway that is gone.
func (w *World) ServerLeft(s plugins.RemoteServer) error {
	w.forgetServer(s)
	return nil
}

func (w *World) forgetServer(s plugins.RemoteServer) {
	if s.Direction() != plugins.Downstream {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for ref := range w.players {
		if ref.Server == s.ID() {
			w.removeLocked(ref, !w.stopping)
		}
	}
}

// ClientSendFailed forgets a player its client server no longer has.
func (w *World) ClientSendFailed(ref plugins.ClientRef, _ error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.removeLocked(ref, true)
	return nil
}

// ServerMessage handles the gateways' enters, moves, leaves and pings.
func (w *World) ServerMessage(s plugins.RemoteServer, m plugins.Message) error {
	switch m.Tag {
	case TagEnter, TagMove:
		u, err := ParseUpdate(m.Payload)
		if err != nil {
			return err
		}
		if u.Player.Server != s.ID() {
			return fmt.Errorf("world: %s sent an update for %s, a player of another server", s.ID(), u.Player)
		}
		w.update(u, m.Tag == TagEnter)
	case TagLeave:
		l, err := ParseLeave(m.Payload)
		if err != nil {
			return err
		}
		if l.Player.Server != s.ID() {
			return fmt.Errorf("world: %s sent a leave for %s, a player of another server", s.ID(), l.Player)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.removeLocked(l.Player, !l.Handover)
	case TagPing:
		p, err := ParsePing(m.Payload)
		if err != nil {
			return err
		}
		w.push([]ClientRef{p.Player}, PlayerPong, AppendStamp(nil, p.Stamp))
	default:
		return fmt.Errorf("world: unexpected tag %d from %s", m.Tag, s.ID())
	}
	return nil
}

// update records a player's state and tells the players concerned.
func (w *World) update(u Update, enter bool) {
	w.updates.Add(1)
	pos := u.Point.Clamp()
	region := Region(pos.X, w.Regions)
	w.mu.Lock()
	defer w.mu.Unlock()
	r, known := w.players[u.Player]
	var was resident
	if known {
		was = *r
		if r.region != region {
			w.unindex(r)
			w.index(r, region)
		}
		r.pos, r.owner = pos, u.Owner
	} else {
		r = &resident{ref: u.Player, pos: pos, owner: u.Owner}
		w.players[u.Player] = r
		w.index(r, region)
	}

	// Everyone this server owns near the player learns where it is (the
	// player too, which gets its stamp back).
	near := w.ownedNearLocked(region, ClientRef{})
	w.push(near, PlayerMoved, AppendPosition(nil, Position{Player: r.ref, Point: pos, Region: region, Stamp: u.Stamp}))

	// Those it owns that the player just left behind learn it is gone.
	if known && was.region != region {
		var left []ClientRef
		for _, ref := range w.ownedNearLocked(was.region, r.ref) {
			if o := w.players[ref]; !Near(o.region, region) {
				left = append(left, ref)
			}
		}
		w.push(left, PlayerGone, AppendRef(nil, r.ref))
	}

	// A player arriving in one of this server's regions learns who is near.
	if u.Owner && (enter || !known || !was.owner || was.region != region) {
		w.sendViewLocked(r)
	}
}

// index puts r in region.
func (w *World) index(r *resident, region int) {
	r.region = region
	m := w.byRegion[region]
	if m == nil {
		m = make(map[ClientRef]*resident)
		w.byRegion[region] = m
	}
	m[r.ref] = r
}

// unindex takes r out of its region.
func (w *World) unindex(r *resident) {
	m := w.byRegion[r.region]
	delete(m, r.ref)
	if len(m) == 0 {
		delete(w.byRegion, r.region)
	}
}

// removeLocked forgets a player; announce tells the players this server
// owns near it that it is gone.
func (w *World) removeLocked(ref ClientRef, announce bool) {
	r, ok := w.players[ref]
	if !ok {
		return
	}
	delete(w.players, ref)
	w.unindex(r)
	if announce {
		w.push(w.ownedNearLocked(r.region, ref), PlayerGone, AppendRef(nil, ref))
	}
}

// ownedNearLocked returns the players this server owns within one region of
// region, except skip.
func (w *World) ownedNearLocked(region int, skip ClientRef) []ClientRef {
	var out []ClientRef
	for q := region - 1; q <= region+1; q++ {
		for ref, r := range w.byRegion[q] {
			if r.owner && ref != skip {
				out = append(out, ref)
			}
		}
	}
	return out
}

// sendViewLocked sends r the positions of every player within one region of
// it, in messages of at most maxViewEntries.
func (w *World) sendViewLocked(r *resident) {
	var view []Position
	for q := r.region - 1; q <= r.region+1; q++ {
		for ref, o := range w.byRegion[q] {
			if ref != r.ref {
				view = append(view, Position{Player: ref, Point: o.pos, Region: o.region})
			}
		}
	}
	slices.SortFunc(view, func(a, b Position) int {
		return cmp.Or(cmp.Compare(a.Player.Server, b.Player.Server), cmp.Compare(a.Player.ID, b.Player.ID))
	})
	for first := true; first || len(view) > 0; first = false {
		n := min(len(view), maxViewEntries)
		b, _ := AppendView(nil, view[:n]) // n is small enough
		w.push([]ClientRef{r.ref}, PlayerView, b)
		view = view[n:]
	}
}

// push sends one message to players on any client server.
func (w *World) push(refs []ClientRef, tag uint16, payload []byte) {
	if len(refs) == 0 {
		return
	}
	w.pushes.Add(uint64(len(refs)))
	if err := w.host.SendToClients(refs, tag, payload); err != nil {
		// A client server that is not linked: its gateway hands its players
		// over again when it is. Clients found gone come back through
		// ClientSendFailed.
		w.pushErrors.Add(1)
		w.host.Logger().Debug().Err(err).Msg("push failed")
	}
}

// Resident is a world server's copy of a player.
type Resident struct {
	Point
	Region int
	// Owner: this world server owns the player's region; otherwise it
	// watches it from an adjacent region it owns.
	Owner bool
}

// Player returns this world server's copy of a player. It is safe for
// concurrent use.
func (w *World) Player(ref ClientRef) (Resident, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.players[ref]
	if !ok {
		return Resident{}, false
	}
	return Resident{Point: r.pos, Region: r.region, Owner: r.owner}, true
}

// WorldStats are a world server's figures.
type WorldStats struct {
	Owned      int    // players in the regions it owns
	Watched    int    // players next to them
	Updates    uint64 // enters and moves received
	Pushes     uint64 // messages sent to players (one per recipient)
	PushErrors uint64 // pushes that could not be routed to every recipient
}

// Stats returns the world server's figures. It is safe for concurrent use.
func (w *World) Stats() WorldStats {
	w.mu.Lock()
	var st WorldStats
	for _, r := range w.players {
		if r.owner {
			st.Owned++
		} else {
			st.Watched++
		}
	}
	w.mu.Unlock()
	st.Updates = w.updates.Load()
	st.Pushes = w.pushes.Load()
	st.PushErrors = w.pushErrors.Load()
	return st
}
