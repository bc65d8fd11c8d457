package bots

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/examples/openworld"
)

// drainWorld is an open world with three client servers whose drains
// wait as long as a test could: a drain ends only when its players left.
const drainWorld = `
system: bots-drain
secret: bots-drain-secret-of-enough-length
registry:
  type: embedded
groups:
  - name: client
    visibility: external
    connectsTo: [world, social]
    clients:
      drainTimeout: 1h
  - name: world
    visibility: internal
  - name: social
    visibility: internal
`

// patience bounds the waits of these tests; it is no performance
// assertion.
const patience = 20 * time.Second

// startWorld starts social-1, world-1 and client-1 to client-3 and
// returns the client servers' gateways by ID.
func startWorld(t *testing.T) (*clustertest.System, map[string]*openworld.Gateway) {
	sys := clustertest.New(t, drainWorld)
	sys.StartServer(openworld.SocialGroup, "social-1", new(openworld.Chat))
	sys.StartServer(openworld.WorldGroup, "world-1", openworld.NewWorld())
	gws := make(map[string]*openworld.Gateway)
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("client-%d", i)
		gws[id] = new(openworld.Gateway)
		sys.StartServer("client", id, gws[id])
	}
	for id, g := range gws {
		sys.WaitFor(id+" linked to the world and social servers", func() bool {
			st := g.Stats()
			return st.Worlds == 1 && st.Socials == 1 && st.Regions > 0
		})
	}
	return sys, gws
}

// progressLog keeps a swarm's latest progress report.
type progressLog struct {
	mu   sync.Mutex
	last Progress
}

func (l *progressLog) report(p Progress) {
	l.mu.Lock()
	l.last = p
	l.mu.Unlock()
}

func (l *progressLog) get() Progress {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// runSwarm runs s until the test ends (or stop is called) and returns its
// progress log and what returns its final figures.
func runSwarm(t *testing.T, s *Swarm) (*progressLog, func() Progress) {
	log := new(progressLog)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Progress, 1)
	go func() {
		p, err := s.Run(ctx, 10*time.Millisecond, log.report)
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- p
	}()
	var once sync.Once
	var final Progress
	stop := func() Progress {
		once.Do(func() {
			cancel()
			select {
			case final = <-done:
			case <-time.After(patience):
				t.Error("the swarm did not stop")
			}
		})
		return final
	}
	t.Cleanup(func() { stop() })
	return log, stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Bots on a server that drains follow its Move to the other servers: the
// drain ends because they left, none of them dropped, and they play on.
func TestBotsFollowTheDrain(t *testing.T) {
	sys, gws := startWorld(t)
	const n = 6
	log, stop := runSwarm(t, &Swarm{URLs: []string{sys.Server("client-1").URL()}, Players: n, MoveEvery: 20 * time.Millisecond, ChatEvery: -1})
	waitFor(t, "every bot on client-1", func() bool { return gws["client-1"].Stats().Players == n && log.get().Connected == n })

	drained := make(chan error, 1)
	go func() { drained <- sys.Server("client-1").Cluster().Drain(context.Background()) }()
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("Drain: %v", err)
		}
	case <-time.After(patience):
		t.Fatalf("the drain did not end: the bots did not leave (progress %+v)", log.get())
	}
	waitFor(t, "every bot on client-2 and client-3", func() bool {
		return gws["client-2"].Stats().Players+gws["client-3"].Stats().Players == n
	})
	sent := log.get().Sent
	waitFor(t, "the bots to play on", func() bool { return log.get().Sent > sent+n })
	final := stop()
	if final.Moves != n || final.Drops != 0 || final.Joins != n {
		t.Errorf("final %+v: want %d moves, %d joins and no drop", final, n, n)
	}
}

// Bots given only the directory join its servers that are not draining.
func TestBotsJoinThroughTheDirectory(t *testing.T) {
	sys, gws := startWorld(t)
	if err := sys.Server("client-3").Cluster().BeginDrain(); err != nil {
		t.Fatal(err)
	}
	const n = 8
	dir := "http://" + sys.Server("client-1").Addr() + "/servers"
	log, stop := runSwarm(t, &Swarm{Directory: dir, Players: n, MoveEvery: 20 * time.Millisecond, ChatEvery: -1})
	waitFor(t, "every bot connected", func() bool { return log.get().Connected == n })
	c1, c2 := gws["client-1"].Stats().Players, gws["client-2"].Stats().Players
	if c1+c2 != n {
		t.Errorf("players: client-1 %d, client-2 %d, client-3 (draining) %d; want %d on the first two",
			c1, c2, gws["client-3"].Stats().Players, n)
	}
	if final := stop(); final.JoinErrors != 0 {
		t.Errorf("final %+v: join errors", final)
	}
}
