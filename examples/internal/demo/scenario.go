package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/internal/backoff"
)

// WatchTimeout bounds a Scenario's Watch.
const WatchTimeout = 10 * time.Second

// Scenario is the shape of every example's Simulation: bots, each on its
// own goroutine, against a running system, one of them asked in turn to
// crash now and then, and an observer, one more game client, whose view is
// summed up every interval. V is the observer's view. Example, URL,
// Observer, Watch, Bots, Bot and Summary are required.
type Scenario[V any] struct {
	// Example names the example; it begins Play's errors and reports.
	Example string
	// URL is the observer's client server.
	URL string
	// Observer says what the observer is ("browser"), in errors and
	// reports.
	Observer string
	// Watch starts the observer's view on c, within ctx (bounded by
	// WatchTimeout).
	Watch func(ctx context.Context, c *client.Client) (V, error)
	// Bots is how many bots to run, and Bot the run of each (see
	// StartBots).
	Bots int
	Bot  func(ctx context.Context, i int, crash <-chan struct{})
	// CrashEvery, when positive, is how often one bot, in turn, is asked
	// to crash. Zero: never.
	CrashEvery time.Duration
	// Summary returns the line to report each interval, from the view;
	// an empty line is not reported.
	Summary func(view V) string
}

// Play dials the observer and starts its view, then runs the bots until
// ctx ends or the observer disconnects, reporting the Summary every
// interval (zero means 1s). It returns an error only when the observer
// cannot start; it returns once every bot has.
func (s Scenario[V]) Play(ctx context.Context, interval time.Duration, report func(string)) error {
	if interval <= 0 {
		interval = time.Second
	}
	observer, err := Dial(ctx, client.Options{URL: s.URL})
	if err != nil {
		return fmt.Errorf("%s: %s: %w", s.Example, s.Observer, err)
	}
	defer observer.Close()
	wctx, cancel := context.WithTimeout(ctx, WatchTimeout)
	view, err := s.Watch(wctx, observer)
	cancel()
	if err != nil {
		return err
	}
	bots := StartBots(ctx, s.Bots, s.Bot)
	defer bots.Wait()
	crashes, stop := Ticks(s.CrashEvery)
	defer stop()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-observer.Done():
			report(s.Example + ": " + s.Observer + " disconnected: " + observer.Err().Error())
			return nil
		case <-crashes:
			bots.CrashNext()
		case <-t.C:
			if line := s.Summary(view); line != "" {
				report(line)
			}
		}
	}
}

// Reconnect runs session on a fresh connection of a game client with
// opts, again and again, until ctx ends: a failed dial is tried again a
// second later, and each connection is closed once its session returns.
// session must return once ctx ends or its connection does.
func Reconnect(ctx context.Context, opts client.Options, session func(c *client.Client)) {
	for ctx.Err() == nil {
		c, err := Dial(ctx, opts)
		if err != nil {
			backoff.Sleep(ctx, time.Second)
			continue
		}
		session(c)
		c.Close()
	}
}
