package stats

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/examples/internal/demo"
)

// Simulation runs simulated players that score kills against a running
// stats system, and a watcher of the running total: what the example's dev
// mode shows. Its zero value needs URLs and Players.
type Simulation struct {
	// URLs of the client servers; players are spread over them and the
	// watcher uses the first.
	URLs []string
	// Players is how many players to run.
	Players int
	// KillEvery is the mean time between two kills of one player. Zero
	// means 500ms.
	KillEvery time.Duration
	// SessionLength is the mean time a player stays before leaving and
	// joining again as a new session. Zero means 20s.
	SessionLength time.Duration

	kills    atomic.Uint64
	sessions atomic.Int64
}

// Run runs the players and the watcher until ctx ends, calling report
// with a one-line summary every interval.
func (s *Simulation) Run(ctx context.Context, interval time.Duration, report func(string)) error {
	if len(s.URLs) == 0 || s.Players < 1 {
		return fmt.Errorf("stats: simulation needs URLs and players")
	}
	var lastKills uint64
	last := time.Now()
	return demo.Scenario[*Total]{
		Example:  "stats",
		URL:      s.URLs[0],
		Observer: "watcher",
		Watch:    WatchTotal,
		Bots:     s.Players,
		Bot:      s.player,
		Summary: func(tot *Total) string {
			k, now := s.kills.Load(), time.Now()
			rate := float64(k-lastKills) / now.Sub(last).Seconds()
			lastKills, last = k, now
			total := "not posted yet"
			if n, ok := tot.Kills(); ok {
				total = fmt.Sprint(n)
			}
			return fmt.Sprintf("stats: running total %s | this run: %d kills (%.0f/s) by %d players in %d sessions",
				total, k, rate, s.Players, s.sessions.Load())
		},
	}.Play(ctx, interval, report)
}

// player plays sessions until ctx ends. Players do not crash: they
// leave when their session ends.
func (s *Simulation) player(ctx context.Context, i int, _ <-chan struct{}) {
	every, length := s.KillEvery, s.SessionLength
	if every <= 0 {
		every = 500 * time.Millisecond
	}
	if length <= 0 {
		length = 20 * time.Second
	}
	rng := rand.New(rand.NewPCG(uint64(i), 11))
	name := fmt.Sprintf("player-%03d", i+1)
	demo.Reconnect(ctx, client.Options{URL: s.URLs[i%len(s.URLs)]}, func(c *client.Client) {
		s.sessions.Add(1)
		p, _ := NewPlayer(c, name)
		end := time.After(time.Duration(float64(length) * (0.5 + rng.Float64())))
	session:
		for {
			wait := time.Duration(float64(every) * (0.5 + rng.Float64()))
			select {
			case <-ctx.Done():
				break session
			case <-c.Done():
				break session
			case <-end:
				break session
			case <-time.After(wait):
				n := uint64(1 + rng.IntN(2))
				octx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if p.AddKills(octx, n) == nil {
					s.kills.Add(n)
				}
				cancel()
			}
		}
	})
}
