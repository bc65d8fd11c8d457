package directory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/examples/internal/demo"
	"github.com/cloudrift/cloudrift/internal/backoff"
)

// Simulation runs simulated dedicated game servers against a running
// directory system, and a browser that watches the list: what the
// example's dev mode shows. Its zero value needs URLs, App and Servers.
type Simulation struct {
	// URLs of the client servers; game servers are spread over them and
	// the browser uses the last.
	URLs []string
	// App is the application key; HostToken the guard's host token.
	App, HostToken string
	// Servers is how many game servers to run.
	Servers int
	// ChangeEvery is how often each game server's player count changes.
	// Zero means 1s.
	ChangeEvery time.Duration
	// CrashEvery, when positive, is how often one game server (in turn)
	// drops its connection without delisting, then comes back after
	// CrashEvery/4.
	CrashEvery time.Duration

	crashes atomic.Int64
}

var levels = []string{"dust", "forest", "harbor", "temple", "canyon"}

// Run runs the game servers and the browser until ctx ends, calling report
// with a one-line summary of the browser's list at the end of each
// interval in which it changed.
func (s *Simulation) Run(ctx context.Context, interval time.Duration, report func(string)) error {
	if len(s.URLs) == 0 || s.Servers < 1 || s.App == "" {
		return fmt.Errorf("directory: simulation needs URLs, an app key and servers")
	}
	return demo.Scenario[*Browser]{
		Example:    "directory",
		URL:        s.URLs[len(s.URLs)-1],
		Observer:   "browser",
		Watch:      func(ctx context.Context, c *client.Client) (*Browser, error) { return Watch(ctx, c, s.App) },
		Bots:       s.Servers,
		Bot:        s.gameServer,
		CrashEvery: s.CrashEvery,
		Summary: func(b *Browser) string {
			select {
			case <-b.Changed():
				return summary(b.Servers(nil), s.crashes.Load())
			default:
				return ""
			}
		},
	}.Play(ctx, interval, report)
}

// summary formats a list in one line.
func summary(ss []Server, crashes int64) string {
	open := 0
	var parts []string
	for _, s := range ss {
		if !s.Full() {
			open++
		}
		if len(parts) < 4 {
			parts = append(parts, fmt.Sprintf("%s %s %d/%d %s", s.Name, s.Level, s.Players, s.MaxPlayers, s.Addr))
		}
	}
	if len(ss) > len(parts) {
		parts = append(parts, "...")
	}
	return fmt.Sprintf("directory: %d listed, %d with room, %d crashes so far | %s", len(ss), open, crashes, strings.Join(parts, "; "))
}

// gameServer keeps one simulated game server listed until ctx ends.
func (s *Simulation) gameServer(ctx context.Context, i int, crash <-chan struct{}) {
	every := s.ChangeEvery
	if every <= 0 {
		every = time.Second
	}
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	l := Listing{
		Name:       fmt.Sprintf("server-%02d", i+1),
		Level:      levels[i%len(levels)],
		MaxPlayers: 8 + 8*(i%3),
		GamePort:   27015 + i,
	}
	opts := client.Options{URL: s.URLs[i%len(s.URLs)], Header: http.Header{TokenHeader: []string{s.HostToken}}}
	demo.Reconnect(ctx, opts, func(c *client.Client) { s.serve(ctx, c, &l, rng, every, crash) })
}

// serve announces l on c and changes its players until ctx ends, c ends
// or a crash is asked for (then it pauses before reconnecting).
func (s *Simulation) serve(ctx context.Context, c *client.Client, l *Listing, rng *rand.Rand, every time.Duration, crash <-chan struct{}) {
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := Announce(octx, c, s.App, *l)
	cancel()
	if err != nil {
		backoff.Sleep(ctx, time.Second)
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = Delist(dctx, c, s.App)
			cancel()
			return
		case <-c.Done():
			return
		case <-crash:
			s.crashes.Add(1)
			c.Close()
			backoff.Sleep(ctx, s.CrashEvery/4)
			return
		case <-t.C:
			l.Players = max(0, min(l.MaxPlayers, l.Players+rng.IntN(5)-2))
			l.PlayerList = l.PlayerList[:0]
			for p := range l.Players {
				l.PlayerList = append(l.PlayerList, fmt.Sprintf("player-%d", p+1))
			}
			octx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_ = SetPlayers(octx, c, s.App, l.Players, l.PlayerList)
			cancel()
		}
	}
}
