// Package bots runs simulated players against a running open world (see
// package openworld), and adds them to a binary's command line: the "bots"
// command, and bots that "dev" starts once its system is up (Options).
//
// A bot is an openworld.Player that walks at random around the centre of
// the map, where the other bots are, and chats now and then. Its round trips
// are measured on its moves: the world server that owns its region echoes
// each move's stamp back to it in the position it pushes.
package bots

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/examples/openworld"
	"github.com/cloudrift/cloudrift/internal/backoff"
)

// Defaults for the zero values of Swarm.
const (
	DefaultPlayers   = 10
	DefaultMoveEvery = 100 * time.Millisecond
	DefaultChatEvery = 10 * time.Second
	DefaultArea      = 512
	// MaxPlayers bounds Players.
	MaxPlayers = 100000
)

// Rejoin backoff after a failed join or a dropped connection.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// ErrBadSwarm is wrapped by every problem Run finds in a Swarm's settings.
var ErrBadSwarm = errors.New("bots: bad swarm")

// Swarm runs simulated players. Set its fields, then call Run. The zero
// value of each field but URLs is a usable default.
type Swarm struct {
	// URLs are client servers' WebSocket endpoints; players are spread
	// over them in turn. At least one of URLs and Directory is required.
	URLs []string
	// Directory, when set, is a client group's directory,
	// http(s)://host:port/servers: every join reads it and picks the less
	// loaded of two of its servers drawn at random (so that players joining
	// together do not all pick the same one), falling back to the others,
	// then to URLs.
	Directory string
	// Players is how many players to run, 1 to MaxPlayers. Zero means
	// DefaultPlayers.
	Players int
	// MoveEvery is how often each player moves. Zero means
	// DefaultMoveEvery (100ms); the client servers' rate limit must allow
	// it.
	MoveEvery time.Duration
	// ChatEvery is how often each player chats. Zero means
	// DefaultChatEvery (10s); negative, never.
	ChatEvery time.Duration
	// Area is the side of the square around the map's centre where players
	// spawn and walk, so they meet. Zero means DefaultArea (512 units).
	Area int32
	// Name prefixes the players' names, "bot" when empty: bot-1, bot-2...
	Name string
	// Dial configures each player's connection (timeouts).
	Dial client.Options
}

// Progress is a swarm's figures. The rates and round trips are those of the
// last period between two reports; in the Progress Run returns, of the whole
// run.
type Progress struct {
	Elapsed   time.Duration // since Run started
	Players   int           // players the swarm runs
	Connected int           // players connected now

	Joins      uint64 // successful joins, rejoins included
	JoinErrors uint64 // failed joins
	Drops      uint64 // connections that ended before Run did
	Moves      uint64 // players that moved to another server when theirs drained

	Sent, Received         uint64  // messages, since Run started
	SentRate, ReceivedRate float64 // messages per second
	Chats                  uint64  // chat lines received, since Run started

	RTT RTT // round trips of moves
}

// String formats the progress on one line.
func (p Progress) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "players %d/%d  sent %s/s  received %s/s  rtt ", p.Connected, p.Players, count(p.SentRate), count(p.ReceivedRate))
	if p.RTT.Samples == 0 {
		b.WriteString("-")
	} else {
		fmt.Fprintf(&b, "p50 %s p90 %s p99 %s max %s", ms(p.RTT.P50), ms(p.RTT.P90), ms(p.RTT.P99), ms(p.RTT.Max))
	}
	if p.JoinErrors > 0 || p.Drops > 0 {
		fmt.Fprintf(&b, "  join errors %d  drops %d", p.JoinErrors, p.Drops)
	}
	if p.Moves > 0 {
		fmt.Fprintf(&b, "  moves %d", p.Moves)
	}
	return b.String()
}

// count formats a rate: 950, 1.2k, 3.4M.
func count(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

// swarmState is what a swarm's players update.
type swarmState struct {
	connected                                         atomic.Int64
	joins, joinErrors, drops, moves, sent, recv, chat atomic.Uint64
	rtt                                               recorder
}

// Run runs the players until ctx ends, then disconnects them and returns
// the figures of the whole run. A player whose join fails or whose
// connection ends joins again after a backoff. Every interval (if positive
// and report is not nil) Run calls report, on its own goroutine, with the
// figures so far. It returns an error wrapping ErrBadSwarm, at once, for bad
// settings.
func (s *Swarm) Run(ctx context.Context, interval time.Duration, report func(Progress)) (Progress, error) {
	c, err := s.withDefaults()
	if err != nil {
		return Progress{}, err
	}
	start := time.Now()
	var st swarmState
	var wg sync.WaitGroup
	for i := range c.Players {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.bot(ctx, i, &st)
		}()
	}
	var tickC <-chan time.Time
	if interval > 0 && report != nil {
		t := time.NewTicker(interval)
		defer t.Stop()
		tickC = t.C
	}
	last, lastSent, lastRecv := start, uint64(0), uint64(0)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case now := <-tickC:
			if ctx.Err() != nil {
				done = true // the players are leaving: the summary follows
				break
			}
			p := c.progress(&st, start, now)
			secs := now.Sub(last).Seconds()
			p.SentRate, p.ReceivedRate = rate(p.Sent-lastSent, secs), rate(p.Received-lastRecv, secs)
			p.RTT = st.rtt.cut()
			last, lastSent, lastRecv = now, p.Sent, p.Received
			report(p)
		}
	}
	wg.Wait()
	now := time.Now()
	p := c.progress(&st, start, now)
	secs := now.Sub(start).Seconds()
	p.SentRate, p.ReceivedRate = rate(p.Sent, secs), rate(p.Received, secs)
	st.rtt.cut()
	p.RTT = st.rtt.overall()
	return p, nil
}

func rate(n uint64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(n) / secs
}

func (s *Swarm) progress(st *swarmState, start, now time.Time) Progress {
	return Progress{
		Elapsed:    now.Sub(start),
		Players:    s.Players,
		Connected:  int(st.connected.Load()),
		Joins:      st.joins.Load(),
		JoinErrors: st.joinErrors.Load(),
		Drops:      st.drops.Load(),
		Moves:      st.moves.Load(),
		Sent:       st.sent.Load(),
		Received:   st.recv.Load(),
		Chats:      st.chat.Load(),
	}
}

// withDefaults returns a copy of s with defaults applied, or the problem.
func (s *Swarm) withDefaults() (*Swarm, error) {
	c := *s
	c.URLs = append([]string(nil), s.URLs...)
	if len(c.URLs) == 0 && c.Directory == "" {
		return nil, fmt.Errorf("%w: no client server URL and no directory", ErrBadSwarm)
	}
	if c.Directory != "" && !strings.HasPrefix(c.Directory, "http://") && !strings.HasPrefix(c.Directory, "https://") {
		return nil, fmt.Errorf("%w: directory %q: want http(s)://host:port/servers", ErrBadSwarm, c.Directory)
	}
	for _, u := range c.URLs {
		if !strings.HasPrefix(u, "ws://") && !strings.HasPrefix(u, "wss://") {
			return nil, fmt.Errorf("%w: url %q: want ws://host:port/path or wss://...", ErrBadSwarm, u)
		}
	}
	if c.Players == 0 {
		c.Players = DefaultPlayers
	}
	if c.Players < 1 || c.Players > MaxPlayers {
		return nil, fmt.Errorf("%w: %d players: want 1 to %d", ErrBadSwarm, c.Players, MaxPlayers)
	}
	if c.MoveEvery == 0 {
		c.MoveEvery = DefaultMoveEvery
	}
	if c.MoveEvery < time.Millisecond {
		return nil, fmt.Errorf("%w: moving every %s: want at least 1ms", ErrBadSwarm, c.MoveEvery)
	}
	if c.ChatEvery == 0 {
		c.ChatEvery = DefaultChatEvery
	}
	if c.Area == 0 {
		c.Area = DefaultArea
	}
	if c.Area < 1 || c.Area > openworld.MapSize {
		return nil, fmt.Errorf("%w: area %d: want 1 to %d", ErrBadSwarm, c.Area, openworld.MapSize)
	}
	if c.Name == "" {
		c.Name = "bot"
	}
	return &c, nil
}

// bot runs player i until ctx ends, joining again when its connection
// ends, and moving to another server when its server drains.
func (s *Swarm) bot(ctx context.Context, i int, st *swarmState) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), uint64(i)))
	name := fmt.Sprintf("%s-%d", s.Name, i+1)
	rejoin := backoff.Policy{Min: minBackoff, Max: maxBackoff}
	failures := 0
	// Spread the first joins over one move period.
	if !backoff.Sleep(ctx, time.Duration(rng.Int64N(int64(s.MoveEvery)))) {
		return
	}
	for ctx.Err() == nil {
		spawn := s.walk(rng, openworld.Point{X: openworld.MapSize / 2, Y: openworld.MapSize / 2}, s.Area/2)
		p, err := s.join(ctx, s.servers(ctx, rng, i, ""), name, spawn, st)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			st.joinErrors.Add(1)
			failures++
			if !backoff.Sleep(ctx, rejoin.Delay(failures)) {
				return
			}
			continue
		}
		failures = 0
		st.joins.Add(1)
		st.connected.Add(1)
		for p != nil {
			moved := s.play(ctx, p, rng, i, st)
			p.Close()
			if moved != nil {
				st.moves.Add(1)
			}
			p = moved
		}
		st.connected.Add(-1)
		if ctx.Err() != nil {
			return
		}
		st.drops.Add(1)
		if !backoff.Sleep(ctx, rejoin.Delay(1)) {
			return
		}
	}
}

// join joins the first of urls that takes the player.
func (s *Swarm) join(ctx context.Context, urls []string, name string, spawn openworld.Point, st *swarmState) (*openworld.Player, error) {
	if len(urls) == 0 {
		return nil, errors.New("bots: no client server to join (the directory gave none)")
	}
	var errs []error
	for _, u := range urls {
		p, err := openworld.Join(ctx, openworld.JoinOptions{
			URL:   u,
			Name:  name,
			Spawn: &spawn,
			Dial:  s.Dial,
			OnMessage: func(m client.Message) {
				st.recv.Add(1)
				if m.Tag == openworld.PlayerChatLine {
					st.chat.Add(1)
				}
			},
			OnRTT: st.rtt.add,
		})
		if err == nil {
			return p, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// play moves and chats until ctx ends or the connection does, or until
// the server asks the player to move and it has joined another server:
// it then returns the new player (the caller closes the old one).
func (s *Swarm) play(ctx context.Context, p *openworld.Player, rng *rand.Rand, i int, st *swarmState) *openworld.Player {
	move := time.NewTicker(s.MoveEvery)
	defer move.Stop()
	var chatC <-chan time.Time
	if s.ChatEvery > 0 {
		// Chat first at a random point of the first period.
		first := time.NewTimer(time.Duration(rng.Int64N(int64(s.ChatEvery))))
		defer first.Stop()
		chatC = first.C
	}
	var chat *time.Ticker
	defer func() {
		if chat != nil {
			chat.Stop()
		}
	}()
	pos := p.Position()
	lines := 0
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-p.Done():
			return nil
		case m := <-p.Moved():
			// Make before break: join elsewhere, where the player stands,
			// before leaving.
			urls := appendNew(nil, m.URLs...)
			urls = appendNew(urls, s.servers(ctx, rng, i, p.URL())...)
			urls = slices.DeleteFunc(urls, func(u string) bool { return u == p.URL() })
			if np, err := s.join(ctx, urls, p.Name(), pos, st); err == nil {
				return np
			}
			continue // nowhere to go: stay until the server closes
		case <-move.C:
			pos = s.walk(rng, pos, 24)
			err = p.Move(pos.X, pos.Y)
		case <-chatC:
			if chat == nil {
				chat = time.NewTicker(s.ChatEvery)
				chatC = chat.C
			}
			lines++
			err = p.Chat(fmt.Sprintf("%s says hello (%d)", p.Name(), lines))
		}
		if err != nil {
			return nil // the connection ended: p.Done is closed or closing
		}
		st.sent.Add(1)
	}
}

// walk returns a random point within step of from, kept inside the swarm's
// area around the map's centre.
func (s *Swarm) walk(rng *rand.Rand, from openworld.Point, step int32) openworld.Point {
	lo := int32(openworld.MapSize/2) - s.Area/2
	hi := lo + s.Area - 1
	in := func(v int32) int32 {
		v += rng.Int32N(2*step+1) - step
		if v < lo {
			v = lo + (lo - v)
		}
		if v > hi {
			v = hi - (v - hi)
		}
		return min(max(v, lo), hi)
	}
	return openworld.Point{X: in(from.X), Y: in(from.Y)}.Clamp()
}
