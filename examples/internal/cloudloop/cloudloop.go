// Package cloudloop is the goroutine of the examples' server-side clients
// of the cloud memory (the stats aggregator, the tasks coordinator): a
// plugin hands its cloud notifications to one loop goroutine, which
// subscribes (trying again until the cloud memory answers), bounds each
// of its cloud operations, and ends them all when the plugin stops.
//
// It is internal to the examples: its API changes with them.
package cloudloop

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/internal/backoff"
	"github.com/cloudrift/cloudrift/plugins"
)

// Tuning of every loop.
const (
	// OpWait bounds one cloud operation of the loop.
	OpWait = 10 * time.Second
	// retryMin and retryMax bound the wait after a failed subscribe.
	retryMin = 50 * time.Millisecond
	retryMax = time.Second
)

// Loop runs a plugin's loop goroutine and queues the cloud notifications
// it is handed. Its zero value is ready for Start; Push may be called
// before Start, from any goroutine.
type Loop struct {
	ctx    context.Context // ended by Stop
	cancel context.CancelFunc
	done   chan struct{}

	wakeOnce sync.Once
	wake     chan struct{}

	mu    sync.Mutex
	queue []cloud.Notification
}

// Start runs run on the loop's goroutine. run must return once Stopped
// is closed. Start must be called at most once.
func (l *Loop) Start(run func()) {
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.done = make(chan struct{})
	go func() {
		defer close(l.done)
		run()
	}()
}

// Stop ends the loop's cloud operations, closes Stopped and waits for run
// to return. It does nothing when the loop never started.
func (l *Loop) Stop() {
	if l.done == nil {
		return
	}
	l.cancel()
	<-l.done
}

// Stopped is closed by Stop.
func (l *Loop) Stopped() <-chan struct{} { return l.ctx.Done() }

// Stopping reports whether Stop was called.
func (l *Loop) Stopping() bool { return l.ctx.Err() != nil }

// Push queues n for the loop and wakes it: what a plugin's
// CloudNotification does.
func (l *Loop) Push(n cloud.Notification) {
	l.mu.Lock()
	l.queue = append(l.queue, n)
	l.mu.Unlock()
	l.Kick()
}

// Take returns the queued notifications, in order, and empties the queue.
func (l *Loop) Take() []cloud.Notification {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.queue
	l.queue = nil
	return q
}

// Wake receives after Push or Kick (several may be reported by one value).
func (l *Loop) Wake() <-chan struct{} { return l.wakeC() }

// Kick wakes the loop.
func (l *Loop) Kick() {
	select {
	case l.wakeC() <- struct{}{}:
	default:
	}
}

func (l *Loop) wakeC() chan struct{} {
	l.wakeOnce.Do(func() { l.wake = make(chan struct{}, 1) })
	return l.wake
}

// Op returns the context of one cloud operation: bounded by OpWait, and
// ended by Stop.
func (l *Loop) Op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(l.ctx, OpWait)
}

// Subscribe gets keys with Subscribe set, trying again after a growing
// wait until it works (the cloud replicas may not be linked yet) or Stop;
// each failure is logged at debug level, after what. Then it hands apply
// the snapshot's rows of each key, in keys' order, but for the keys the
// snapshot reports missing: their rows come later, as a Resync. It
// returns the snapshot, or ok false on Stop.
//
// Notifications that arrive meanwhile are queued, and they all follow the
// snapshot: Get with Subscribe is atomic at each key's owner.
func (l *Loop) Subscribe(cm plugins.CloudMemory, keys []cloud.Key, log *zerolog.Logger, what string,
	apply func(k cloud.Key, rows []cloud.Row, truncated bool)) (res *cloud.Result, ok bool) {
	retry := backoff.Policy{Min: retryMin, Max: retryMax}
	for failures := 1; ; failures++ {
		ctx, cancel := l.Op()
		res, err := cm.Get(ctx, cloud.Query{Keys: keys, Subscribe: true})
		cancel()
		if err == nil {
			snap := snapshot(res, keys)
			for _, k := range keys {
				if rows, ok := snap[k]; ok {
					apply(k, rows, res.Truncated)
				}
			}
			return res, true
		}
		log.Debug().Err(err).Msg(what + "; retrying")
		if !backoff.Sleep(l.ctx, retry.Delay(failures)) {
			return nil, false
		}
	}
}

// snapshot groups the rows of keys in res by key, leaving out the keys
// res reports missing.
func snapshot(res *cloud.Result, keys []cloud.Key) map[cloud.Key][]cloud.Row {
	byKey := make(map[cloud.Key][]cloud.Row, len(keys))
	for _, k := range keys {
		byKey[k] = nil
	}
	for _, k := range res.Missing {
		delete(byKey, k)
	}
	for _, r := range res.Rows {
		if _, ok := byKey[r.Key]; ok {
			byKey[r.Key] = append(byKey[r.Key], r)
		}
	}
	return byKey
}
