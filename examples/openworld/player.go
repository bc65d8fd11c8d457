package openworld

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudrift/cloudrift/client"
)

// ErrNoWelcome: the connection ended before the gateway welcomed the player.
var ErrNoWelcome = errors.New("openworld: no welcome from the gateway")

// MaxChatLog is how many chat lines a Player keeps.
const MaxChatLog = 256

// JoinOptions configure Join. The zero value of each field but URL is a
// usable default.
type JoinOptions struct {
	// URL is a client server's WebSocket endpoint, ws://host:port/path.
	URL string
	// Name is the player's name; empty lets the gateway pick one.
	Name string
	// Spawn is where the player starts; nil lets the gateway pick at random.
	Spawn *Point
	// Dial configures the connection; Join sets its URL and Handler.
	Dial client.Options
	// OnMessage, when set, is called for every message the player gets,
	// after the player has applied it, on the connection's read goroutine
	// (see client.Options.Handler: the payload is only valid during the
	// call). It must not call Close.
	OnMessage func(m client.Message)
	// OnRTT, when set, is called with the round trip of each of the
	// player's moves and pings when its answer comes back, on the read
	// goroutine.
	OnRTT func(rtt time.Duration)
}

// Player is a game client of the open world: it moves, chats, and keeps a
// view of the players near it, as the world servers describe them. Its
// methods are safe for concurrent use.
type Player struct {
	c         *client.Client
	url       string    // JoinOptions.URL
	epoch     time.Time // stamps are nanoseconds since epoch
	onMessage func(client.Message)
	onRTT     func(time.Duration)
	ready     chan struct{} // closed once c and ref are set
	welcomed  chan struct{} // closed on the gateway's welcome
	ref       ClientRef

	sent, received, bad atomic.Uint64

	mu     sync.Mutex
	name   string
	pos    Point
	region int // -1 until a world server told
	view   map[ClientRef]Position
	chat   []ChatLine
}

// Join connects a player to a client server and waits for the gateway's
// welcome, at most until ctx ends or o.Dial.DialTimeout passes.
func Join(ctx context.Context, o JoinOptions) (*Player, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("openworld: url %q: %w", o.URL, err)
	}
	q := u.Query()
	if o.Name != "" {
		q.Set("name", o.Name)
	}
	if o.Spawn != nil {
		q.Set("x", strconv.Itoa(int(o.Spawn.X)))
		q.Set("y", strconv.Itoa(int(o.Spawn.Y)))
	}
	u.RawQuery = q.Encode()
	p := &Player{
		url:       o.URL,
		epoch:     time.Now(),
		onMessage: o.OnMessage,
		onRTT:     o.OnRTT,
		ready:     make(chan struct{}),
		welcomed:  make(chan struct{}),
		region:    -1,
		view:      make(map[ClientRef]Position),
	}
	dial := o.Dial
	dial.URL = u.String()
	dial.Handler = p.handle
	timeout := dial.DialTimeout
	if timeout <= 0 {
		timeout = client.DefaultDialTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := client.Dial(ctx, dial)
	if err != nil {
		return nil, err
	}
	p.c, p.ref = c, c.Ref()
	close(p.ready)
	select {
	case <-p.welcomed:
		return p, nil
	case <-c.Done():
		err = fmt.Errorf("%w: %w", ErrNoWelcome, c.Err())
	case <-ctx.Done():
		err = fmt.Errorf("%w: %w", ErrNoWelcome, ctx.Err())
	}
	c.Close()
	return nil, err
}

// handle applies one message; it runs on the read goroutine.
func (p *Player) handle(m client.Message) {
	<-p.ready // the handler may run before Dial returns
	p.received.Add(1)
	if err := p.apply(m); err != nil {
		p.bad.Add(1)
	}
	if p.onMessage != nil {
		p.onMessage(m)
	}
}

func (p *Player) apply(m client.Message) error {
	switch m.Tag {
	case PlayerWelcome:
		w, err := ParseWelcome(m.Payload)
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.name, p.pos = w.Name, w.Point
		p.mu.Unlock()
		select {
		case <-p.welcomed:
		default:
			close(p.welcomed)
		}
	case PlayerMoved:
		pos, err := ParsePosition(m.Payload)
		if err != nil {
			return err
		}
		self := pos.Player == p.ref
		if self && pos.Stamp != 0 {
			p.rtt(pos.Stamp)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if self {
			p.pos, p.region = pos.Point, pos.Region
			p.pruneLocked()
		} else {
			p.seeLocked(pos)
		}
	case PlayerView:
		ps, err := ParseView(m.Payload)
		if err != nil {
			return err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, pos := range ps {
			if pos.Player != p.ref {
				p.seeLocked(pos)
			}
		}
	case PlayerGone:
		ref, err := ParseRef(m.Payload)
		if err != nil {
			return err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.view, ref)
	case PlayerChatLine:
		line, err := ParseChatLine(m.Payload)
		if err != nil {
			return err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.chat) == MaxChatLog {
			p.chat = slices.Delete(p.chat, 0, 1)
		}
		p.chat = append(p.chat, line)
	case PlayerPong:
		stamp, err := ParseStamp(m.Payload)
		if err != nil {
			return err
		}
		p.rtt(stamp)
	}
	return nil
}

// seeLocked records another player's position, if it is near.
func (p *Player) seeLocked(pos Position) {
	pos.Stamp = 0
	if p.region >= 0 && !Near(pos.Region, p.region) {
		delete(p.view, pos.Player)
		return
	}
	p.view[pos.Player] = pos
}

// pruneLocked drops the players no longer near after the player moved.
func (p *Player) pruneLocked() {
	for ref, pos := range p.view {
		if !Near(pos.Region, p.region) {
			delete(p.view, ref)
		}
	}
}

func (p *Player) rtt(stamp uint64) {
	if p.onRTT == nil {
		return
	}
	now := uint64(time.Since(p.epoch))
	if stamp <= now {
		p.onRTT(time.Duration(now - stamp))
	}
}

func (p *Player) stamp() uint64 {
	return uint64(max(time.Since(p.epoch), 1))
}

// Move asks to go to (x, y). The world server owning the player's region
// answers with the player's position, which Position then returns.
func (p *Player) Move(x, y int32) error {
	if err := p.c.Send(PlayerMove, AppendStep(nil, Step{Point: Point{x, y}, Stamp: p.stamp()})); err != nil {
		return err
	}
	p.sent.Add(1)
	return nil
}

// Chat says text to every player. It returns an error wrapping
// ErrBadMessage, without sending, for a text CheckChat refuses.
func (p *Player) Chat(text string) error {
	if err := CheckChat(text); err != nil {
		return err
	}
	if err := p.c.Send(PlayerChat, []byte(text)); err != nil {
		return err
	}
	p.sent.Add(1)
	return nil
}

// Ping asks the world server owning the player's region for a pong; its
// round trip goes to OnRTT.
func (p *Player) Ping() error {
	if err := p.c.Send(PlayerPing, AppendStamp(nil, p.stamp())); err != nil {
		return err
	}
	p.sent.Add(1)
	return nil
}

// Ref returns the player's system-wide address.
func (p *Player) Ref() ClientRef { return p.ref }

// Name returns the name the gateway gave the player.
func (p *Player) Name() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.name
}

// Position returns where the player is: its spawn point until a world
// server confirms a position, then the last position confirmed.
func (p *Player) Position() Point {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pos
}

// Region returns the player's region, or -1 until a world server told it.
func (p *Player) Region() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.region
}

// View returns the other players near this one (same or adjacent region),
// sorted by ref, with their last known positions (Stamp is zero).
func (p *Player) View() []Position {
	p.mu.Lock()
	out := make([]Position, 0, len(p.view))
	for _, pos := range p.view {
		out = append(out, pos)
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b Position) int {
		return cmp.Or(cmp.Compare(a.Player.Server, b.Player.Server), cmp.Compare(a.Player.ID, b.Player.ID))
	})
	return out
}

// Sees returns the last known position of another player near this one.
func (p *Player) Sees(ref ClientRef) (Position, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pos, ok := p.view[ref]
	return pos, ok
}

// Chats returns the last MaxChatLog chat lines the player got, oldest
// first, its own included.
func (p *Player) Chats() []ChatLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.chat)
}

// PlayerStats are a player's message counts.
type PlayerStats struct {
	Sent     uint64 // moves, chat lines and pings sent
	Received uint64 // messages received
	Bad      uint64 // received messages that did not decode
}

// Stats returns the player's message counts.
func (p *Player) Stats() PlayerStats {
	return PlayerStats{Sent: p.sent.Load(), Received: p.received.Load(), Bad: p.bad.Load()}
}

// Done is closed when the connection has ended; Err then says why.
func (p *Player) Done() <-chan struct{} { return p.c.Done() }

// URL returns the client server's endpoint the player joined
// (JoinOptions.URL).
func (p *Player) URL() string { return p.url }

// Moved receives the server's requests to move to another client server
// (it is draining; see client.Client.Moved). The player goes on where it
// is until it is closed; joining elsewhere is the caller's part.
func (p *Player) Moved() <-chan client.Move { return p.c.Moved() }

// Err returns nil while the player is connected, then why it is not (see
// client.Client.Err).
func (p *Player) Err() error { return p.c.Err() }

// Close disconnects the player. It must not be called from OnMessage or
// OnRTT.
func (p *Player) Close() error { return p.c.Close() }
