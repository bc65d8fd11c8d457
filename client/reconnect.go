package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cloudrift/cloudrift/internal/backoff"
)

// Defaults for the zero values of Reconnector.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// Reconnector keeps a client connected: it dials, hands each new client to
// OnConnect, waits for it to end, and dials again after a backoff. Set its
// fields, then call Run. A Reconnector must not be copied after Run is
// first called, and Run must not run twice at once.
type Reconnector struct {
	// Options for every Dial. With Options.Handler set, the same Handler
	// receives the messages of every connection in turn.
	Options Options

	// MinBackoff is the first wait after a connection ends or a dial
	// fails; each further failure doubles the wait up to MaxBackoff. Every
	// wait is jittered down by up to half, so that clients dropped together
	// do not return together. A connection that lasted at least MaxBackoff
	// resets the wait to MinBackoff. Zero or negative means
	// DefaultMinBackoff (100ms) and DefaultMaxBackoff (10s); a MaxBackoff
	// below MinBackoff is raised to it.
	MinBackoff, MaxBackoff time.Duration

	// OnConnect, when set, is called on Run's goroutine with each new
	// client, before Run starts watching it. It should return promptly:
	// start goroutines for long work. In channel style (no
	// Options.Handler) it must arrange for the client's Messages to be
	// drained. The client is closed by Run when it ends or when Run's
	// context ends; OnConnect's goroutines should stop at c.Done().
	OnConnect func(c *Client)

	mu  sync.Mutex
	cur *Client
}

// Run keeps a client connected until ctx ends, then closes it and returns
// ctx's error; or until the server refuses or ends the client with
// protocol.ReasonAuthRefused, which retrying will not fix, and returns
// that error (matching ErrAuthRefused). Every other dial failure or end of
// a session (including the server's other reasons) is retried after a
// backoff. Invalid Options are returned at once.
func (r *Reconnector) Run(ctx context.Context) error {
	if _, err := r.Options.withDefaults(); err != nil {
		return err
	}
	policy := r.policy()
	failures := 0 // consecutive connections that ended early, or dials that failed
	for {
		c, err := Dial(ctx, r.Options)
		if err == nil {
			connected := time.Now()
			r.setCurrent(c)
			if r.OnConnect != nil {
				r.OnConnect(c)
			}
			select {
			case <-c.Done():
			case <-ctx.Done():
			}
			r.setCurrent(nil)
			c.Close()
			err = c.Err()
			if time.Since(connected) >= policy.Max {
				failures = 0
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrAuthRefused) {
			return err
		}
		failures++
		if !backoff.Sleep(ctx, policy.Delay(failures)) {
			return ctx.Err()
		}
	}
}

// Current returns the connected client, or nil between connections. The
// returned client may end at any moment; its Send then reports ErrClosed.
func (r *Reconnector) Current() *Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

func (r *Reconnector) setCurrent(c *Client) {
	r.mu.Lock()
	r.cur = c
	r.mu.Unlock()
}

// policy returns the backoff of MinBackoff and MaxBackoff, with defaults
// applied and MaxBackoff raised to MinBackoff.
func (r *Reconnector) policy() backoff.Policy {
	minB, maxB := r.MinBackoff, r.MaxBackoff
	if minB <= 0 {
		minB = DefaultMinBackoff
	}
	if maxB <= 0 {
		maxB = DefaultMaxBackoff
	}
	return backoff.Policy{Min: minB, Max: max(minB, maxB)}
}
