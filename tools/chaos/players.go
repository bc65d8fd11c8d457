package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/examples/openworld"
	"github.com/cloudrift/cloudrift/internal/backoff"
)

// Player and uploader timings: a move every moveEvery (well inside the
// client servers' rate limit), a redial after rejoinMin to rejoinMax.
const (
	moveEvery   = 250 * time.Millisecond
	rejoinMin   = 100 * time.Millisecond
	rejoinMax   = time.Second
	dialTimeout = 5 * time.Second
	// readTimeout is above the client servers' ping interval (a third of
	// their 30 s read timeout), so a silent client server is noticed.
	readTimeout = 25 * time.Second
)

// dialOptions are the connection options of every player and uploader.
func dialOptions() client.Options {
	return client.Options{DialTimeout: dialTimeout, ReadTimeout: readTimeout}
}

// fleet is the load of the suite: the players and uploaders, the client
// server URLs they dial, and the figures of the event under way. Players
// and uploaders run from the host through the client servers' ports on
// loopback. Methods are safe for concurrent use.
type fleet struct {
	mu      sync.Mutex
	urls    []string        // current client server URLs
	hit     map[string]bool // URLs of the client servers the event hits
	ev      *eventStats     // the event under way
	players []*playerState

	// gate stops uploads while a check reads the rows: uploads hold it
	// shared, a check exclusively.
	gate      sync.RWMutex
	uploaders []*uploader
}

// playerState is what the fleet knows of one player.
type playerState struct {
	name string
	mu   sync.Mutex
	url  string // "" while not connected
}

func (s *playerState) connectedTo() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

func (s *playerState) setURL(url string) {
	s.mu.Lock()
	s.url = url
	s.mu.Unlock()
}

// setURLs replaces the client server URLs.
func (f *fleet) setURLs(urls []string) {
	f.mu.Lock()
	f.urls = urls
	f.mu.Unlock()
}

// pick returns the URL for attempt n of connection i: each starts at its
// own client server and moves on to the next one on every failure.
func (f *fleet) pick(i, n int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.urls) == 0 {
		return ""
	}
	return f.urls[(i+n)%len(f.urls)]
}

// begin starts the figures of an event that hits the client servers at
// hit (none for an event that kills or restarts no client server).
func (f *fleet) begin(ev *eventStats, hit ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ev = ev
	f.hit = map[string]bool{}
	for _, u := range hit {
		f.hit[u] = true
	}
}

// dropped records that a connection to url ended while the suite ran.
func (f *fleet) dropped(who, url string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ev == nil {
		return
	}
	if f.hit[url] {
		f.ev.hitDrops++
		return
	}
	f.ev.drops++
	if len(f.ev.dropEvidence) < 5 {
		f.ev.dropEvidence = append(f.ev.dropEvidence, fmt.Sprintf("%s on %s: %v", who, url, err))
	}
}

// back records that a dropped connection is back after gap.
func (f *fleet) back(gap time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ev != nil {
		f.ev.back = append(f.ev.back, gap)
	}
}

// connectedPlayers returns how many players are connected.
func (f *fleet) connectedPlayers() int {
	n := 0
	for _, p := range f.players {
		if p.connectedTo() != "" {
			n++
		}
	}
	return n
}

// runPlayers starts n players of the open world; they run until ctx ends.
func (f *fleet) runPlayers(ctx context.Context, wg *sync.WaitGroup, n int) {
	for i := range n {
		st := &playerState{name: fmt.Sprintf("chaos-%d", i+1)}
		f.players = append(f.players, st)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.player(ctx, i, st)
		}()
	}
}

// player keeps one player connected and walking around the centre of the
// map, rejoining through the next client server when its connection ends.
func (f *fleet) player(ctx context.Context, i int, st *playerState) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), uint64(i)))
	var lost time.Time // when the connection dropped; zero while connected or never
	for attempt := 0; ctx.Err() == nil; attempt++ {
		url := f.pick(i, attempt)
		spawn := openworld.Point{X: openworld.MapSize/2 + rng.Int32N(64), Y: openworld.MapSize/2 + rng.Int32N(64)}
		p, err := openworld.Join(ctx, openworld.JoinOptions{URL: url, Name: st.name, Spawn: &spawn, Dial: dialOptions()})
		if err != nil {
			backoff.Sleep(ctx, rejoinMin+time.Duration(rng.Int64N(int64(rejoinMax-rejoinMin))))
			continue
		}
		if !lost.IsZero() {
			f.back(time.Since(lost))
		}
		st.setURL(url)
		err = walk(ctx, p, rng)
		st.setURL("")
		p.Close()
		if ctx.Err() != nil {
			return
		}
		lost = time.Now()
		f.dropped(st.name, url, err)
		attempt = -1 // the next attempt goes back to the player's own client server
		backoff.Sleep(ctx, rejoinMin)
	}
}

// walk moves p every moveEvery until ctx ends (nil) or the connection
// does (why).
func walk(ctx context.Context, p *openworld.Player, rng *rand.Rand) error {
	t := time.NewTicker(moveEvery)
	defer t.Stop()
	pos := p.Position()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.Done():
			return p.Err()
		case <-t.C:
			pos = openworld.Point{X: pos.X + rng.Int32N(17) - 8, Y: pos.Y + rng.Int32N(17) - 8}.Clamp()
			if err := p.Move(pos.X, pos.Y); err != nil {
				<-p.Done()
				return p.Err()
			}
		}
	}
}
