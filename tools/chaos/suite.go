package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudrift/cloudrift/internal/backoff"
)

// ErrViolated is wrapped by the error of a run in which an invariant did
// not hold.
var ErrViolated = errors.New("invariant violated")

// Options configure a run. The zero value of each field is a usable
// default.
type Options struct {
	// Events to run, in order; nil means fullEvents.
	Events []event
	// Players of the open world and cloud-memory uploaders kept connected
	// throughout. Zero means 8 and 4.
	Players, Uploaders int
	// Settle bounds how long the system may take to be consistent again
	// after an event. Zero means 2 minutes.
	Settle time.Duration
	// Reconnect bounds how long a dropped player or uploader may take to
	// be connected again. Zero means 30 s.
	Reconnect time.Duration
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any)
}

func (o Options) withDefaults() Options {
	if o.Events == nil {
		o.Events = fullEvents()
	}
	if o.Players <= 0 {
		o.Players = 8
	}
	if o.Uploaders <= 0 {
		o.Uploaders = 4
	}
	if o.Settle <= 0 {
		o.Settle = 2 * time.Minute
	}
	if o.Reconnect <= 0 {
		o.Reconnect = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	return o
}

// eventStats are the figures of one event.
type eventStats struct {
	name         string
	took         time.Duration // the disruption itself
	drops        int           // connections to client servers the event did not hit that ended
	dropEvidence []string
	hitDrops     int             // connections to client servers the event killed or restarted that ended
	back         []time.Duration // how long dropped connections took to return
	rowsLost     int             // rows wrong when the settle bound passed
	settle       time.Duration   // from the end of the disruption until all was consistent
	violation    string          // "" when every invariant held
}

// suite is one run: the system, its load and the figures so far.
type suite struct {
	opts  Options
	sys   *system
	fleet *fleet
	urls  map[string]string // client server URLs by container
	stats []*eventStats
}

// run builds the images, starts the system and its load, runs the
// events, and returns the figures of every event run; its error wraps
// ErrViolated when an invariant did not hold. Everything it started is
// removed before it returns, also when ctx ends.
func run(ctx context.Context, root string, opts Options) ([]*eventStats, error) {
	opts = opts.withDefaults()
	sys, err := newSystem(root, opts.Log)
	if err != nil {
		return nil, err
	}
	defer sys.cleanup()
	su := &suite{opts: opts, sys: sys, fleet: &fleet{}}

	start := time.Now()
	opts.Log("building images")
	if err := sys.build(ctx); err != nil {
		return nil, err
	}
	opts.Log("images built in %v; starting %s", since(start), sys.Name)
	start = time.Now()
	if err := sys.up(ctx); err != nil {
		return nil, err
	}
	// Servers that started before their Consul agent exit and are
	// restarted: the load starts once every one is up and linked.
	if err := su.waitShape(ctx); err != nil {
		return nil, err
	}
	opts.Log("every server passing and linked %v after the start", since(start))
	if err := su.refreshURLs(ctx); err != nil {
		return nil, err
	}

	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopLoad()
	su.fleet.runPlayers(loadCtx, &wg, opts.Players)
	su.fleet.runUploaders(loadCtx, &wg, opts.Uploaders)

	up := event{name: "up (3 Consul, " + sys.shape() + ")", run: func(context.Context, *suite, *eventStats) error { return nil }}
	for _, e := range append([]event{up}, opts.Events...) {
		ev, err := su.runEvent(ctx, e)
		if err != nil {
			return su.stats, fmt.Errorf("%s: %w", e.name, err)
		}
		if ev.violation != "" {
			return su.stats, fmt.Errorf("%w: %s: %s (server logs: %s)", ErrViolated, ev.name, ev.violation, sys.saveLogs(ctx))
		}
	}
	return su.stats, nil
}

// runEvent runs one event: the disruption, then the wait until the
// system is consistent again, then the invariants.
func (su *suite) runEvent(ctx context.Context, e event) (*eventStats, error) {
	ev := &eventStats{name: e.name}
	su.stats = append(su.stats, ev)
	su.opts.Log("event: %s", e.name)
	su.fleet.begin(ev)
	start := time.Now()
	if err := e.run(ctx, su, ev); err != nil {
		return ev, err
	}
	ev.took = time.Since(start)
	if err := su.settle(ctx, ev); err != nil {
		return ev, err
	}
	su.fleet.mu.Lock()
	defer su.fleet.mu.Unlock()
	switch {
	case ev.violation != "":
	case ev.drops > 0:
		ev.violation = fmt.Sprintf("%d connections to client servers the event did not hit were dropped: %s",
			ev.drops, strings.Join(ev.dropEvidence, "; "))
	case len(ev.back) > 0 && slices.Max(ev.back) > su.opts.Reconnect:
		ev.violation = fmt.Sprintf("a dropped connection took %v to return, bound %v", round(slices.Max(ev.back)), su.opts.Reconnect)
	}
	su.opts.Log("  consistent after %v; dropped %d (hit %d); %s", round(ev.settle), ev.drops, ev.hitDrops, ev.violation)
	return ev, nil
}

// waitShape waits until the system has its wanted shape: every server
// passing and linked.
func (su *suite) waitShape(ctx context.Context) error {
	deadline := time.Now().Add(su.opts.Settle)
	for {
		missing, err := su.sys.settled(ctx)
		if err != nil || missing == "" {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not up within %v: %s (server logs: %s)", su.opts.Settle, missing, su.sys.saveLogs(ctx))
		}
		if !backoff.Sleep(ctx, time.Second) {
			return ctx.Err()
		}
	}
}

// settle waits until the system has its wanted shape (every server
// passing and linked), every player and uploader is connected, and the
// rows are consistent (see fleet.checkRows); past the settle bound it
// records the violation and what was missing.
func (su *suite) settle(ctx context.Context, ev *eventStats) error {
	start := time.Now()
	deadline := start.Add(su.opts.Settle)
	lastSaid := start
	for {
		if err := su.refreshURLs(ctx); err != nil {
			return err
		}
		iter := time.Now()
		missing, err := su.sys.settled(ctx)
		if err != nil {
			return err
		}
		if d := time.Since(iter); d > 3*time.Second {
			su.opts.Log("  slow look at Consul and the links: %v", round(d))
		}
		lost := 0
		if missing == "" {
			if n := su.fleet.connectedPlayers(); n < su.opts.Players {
				missing = fmt.Sprintf("%d of %d players connected", n, su.opts.Players)
			}
		}
		if missing == "" {
			rc := su.fleet.checkRows(ctx)
			missing, lost = rc.problem, rc.lost
			if rc.gateWait > 3*time.Second || rc.slowest > 3*time.Second {
				su.opts.Log("  slow rows check: %v waiting for uploads in flight, slowest Get %v", round(rc.gateWait), round(rc.slowest))
			}
		}
		if missing == "" {
			ev.settle = time.Since(start)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(lastSaid) >= 5*time.Second {
			su.opts.Log("  waiting %v: %s", since(start), missing)
			lastSaid = time.Now()
		}
		if time.Now().After(deadline) {
			ev.settle = time.Since(start)
			ev.rowsLost = lost
			ev.violation = fmt.Sprintf("not consistent within %v: %s", su.opts.Settle, missing)
			return nil
		}
		backoff.Sleep(ctx, time.Second)
	}
}

// refreshURLs reads the client servers' published ports again (a
// restarted container gets a new one) and hands them to the fleet,
// ordered by container so that each player keeps its own.
func (su *suite) refreshURLs(ctx context.Context) error {
	urls, err := su.sys.clientURLs(ctx)
	if err != nil {
		return err
	}
	su.urls = urls
	var list []string
	for _, id := range slices.Sorted(maps.Keys(urls)) {
		list = append(list, urls[id])
	}
	su.fleet.setURLs(list)
	return nil
}

// hit marks a container the event kills, restarts or cuts off: when it
// is a client server, the connections to it may drop.
func (su *suite) hit(id string) {
	if url, ok := su.urls[id]; ok {
		su.fleet.mu.Lock()
		su.fleet.hit[url] = true
		su.fleet.mu.Unlock()
	}
}

func since(t time.Time) time.Duration { return round(time.Since(t)) }

func round(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}
