package demo

import (
	"context"
	"sync"
	"time"

	"github.com/cloudrift/cloudrift/client"
)

// DialTimeout bounds every dial of Dial and Flags.Dial.
const DialTimeout = 10 * time.Second

// Dial connects a game client with opts, giving up after DialTimeout or
// when ctx ends, whichever comes first. Only the dial is bounded: the
// client outlives ctx's deadline, and the caller closes it.
func Dial(ctx context.Context, opts client.Options) (*client.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	return client.Dial(dctx, opts)
}

// Ticks returns the channel of a ticker ticking every d, and the function
// that stops it. When d is not positive the channel is nil (it never
// ticks, so a select on it waits for its other cases) and stop does
// nothing.
func Ticks(d time.Duration) (ticks <-chan time.Time, stop func()) {
	if d <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Bots are simulated clients, each run on its own goroutine, that can be
// asked in turn to crash. Start them with StartBots.
type Bots struct {
	wg    sync.WaitGroup
	crash []chan struct{}
	next  int
}

// StartBots starts n bots: run(ctx, i, crash) for every i in [0, n), each
// on its own goroutine. run must return once ctx ends. crash receives when
// the bot is asked to crash (see CrashNext); what crashing means, and when
// the bot looks, is run's business.
func StartBots(ctx context.Context, n int, run func(ctx context.Context, i int, crash <-chan struct{})) *Bots {
	b := &Bots{crash: make([]chan struct{}, n)}
	for i := range n {
		b.crash[i] = make(chan struct{}, 1)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			run(ctx, i, b.crash[i])
		}()
	}
	return b
}

// CrashNext asks the next bot, in turn (0, 1, …, n-1, 0, …), to crash. The
// request waits until the bot looks; a bot that has not yet taken its
// previous request (it is down already) is skipped, and its turn passes.
// CrashNext does nothing when there are no bots. It is not safe for
// concurrent use.
func (b *Bots) CrashNext() {
	if len(b.crash) == 0 {
		return
	}
	select {
	case b.crash[b.next%len(b.crash)] <- struct{}{}:
	default: // that bot is down already
	}
	b.next++
}

// Wait waits until every bot's run has returned.
func (b *Bots) Wait() { b.wg.Wait() }
