package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/internal/backoff"
)

// Uploads: every uploader holds one row under each of rowKeys keys (the
// same keys for all, so each View sees every uploader's rows) and
// overwrites one of them every postEvery.
const (
	rowKeys     = 4
	postEvery   = 300 * time.Millisecond
	postTimeout = 15 * time.Second // above the server's own bound (cloudmemory opTimeout, 5 s), which answers ErrTimeout
)

// keys are the keys every uploader posts under and views.
func keys() []cloud.Key {
	ks := make([]cloud.Key, rowKeys)
	for i := range ks {
		ks[i] = cloud.Key{Primary: "chaos", Secondary: uint32(i)}
	}
	return ks
}

// uploader is a cloud-memory client that posts rows and keeps a View of
// every uploader's rows.
type uploader struct {
	name string

	mu     sync.Mutex
	url    string // "" while not ready
	c      *client.Client
	view   *client.View
	latest map[cloud.Key]string // the value each row must hold
	// dirty keys had a Post whose outcome is unknown (it failed without
	// the server saying nothing changed): the row holds the old or the
	// new value until a later Post succeeds.
	dirty   map[cloud.Key]bool
	lastErr error // of the last Post that failed
}

// state returns the uploader's connection, view and rows, with ok false
// while it is not ready (connecting, posting its rows, or subscribing).
func (u *uploader) state() (c *client.Client, v *client.View, latest map[cloud.Key]string, dirty int, lastErr error, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.url == "" {
		return nil, nil, nil, 0, u.lastErr, false
	}
	latest = make(map[cloud.Key]string, len(u.latest))
	for k, v := range u.latest {
		latest[k] = v
	}
	return u.c, u.view, latest, len(u.dirty), u.lastErr, true
}

// runUploaders starts n uploaders; they run until ctx ends.
func (f *fleet) runUploaders(ctx context.Context, wg *sync.WaitGroup, n int) {
	for i := range n {
		u := &uploader{name: fmt.Sprintf("uploader-%d", i+1), latest: map[cloud.Key]string{}, dirty: map[cloud.Key]bool{}}
		f.uploaders = append(f.uploaders, u)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.upload(ctx, i, u)
		}()
	}
}

// upload keeps one uploader connected: on every connection it posts each
// row with its latest value, opens its View, and then overwrites rows
// until the connection ends.
func (f *fleet) upload(ctx context.Context, i int, u *uploader) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), uint64(i)))
	seq := 0
	var lost time.Time
	for attempt := 0; ctx.Err() == nil; attempt++ {
		url := f.pick(i, attempt)
		opts := dialOptions()
		opts.URL = url
		// The gateway treats every connection as a player and sends it
		// the world around it; unread, those messages would fill the
		// client's queue and stall its read loop, cloud answers and all.
		opts.Handler = func(client.Message) {}
		c, err := client.Dial(ctx, opts)
		if err == nil {
			err = f.prepare(ctx, c, u, &seq)
		}
		if err != nil {
			if c != nil {
				c.Close()
			}
			backoff.Sleep(ctx, rejoinMin+time.Duration(rng.Int64N(int64(rejoinMax-rejoinMin))))
			continue
		}
		if !lost.IsZero() {
			f.back(time.Since(lost))
		}
		u.mu.Lock()
		u.url = url
		u.mu.Unlock()
		err = f.overwrite(ctx, c, u, rng, &seq)
		u.mu.Lock()
		u.url, u.c, u.view = "", nil, nil
		u.mu.Unlock()
		c.Close()
		if ctx.Err() != nil {
			return
		}
		lost = time.Now()
		f.dropped(u.name, url, err)
		attempt = -1
		backoff.Sleep(ctx, rejoinMin)
	}
}

// prepare posts every row of u on the new connection c, with its latest
// value (a fresh one the first time), and opens u's View.
func (f *fleet) prepare(ctx context.Context, c *client.Client, u *uploader, seq *int) error {
	for _, k := range keys() {
		u.mu.Lock()
		val, ok := u.latest[k]
		if !ok {
			*seq++
			val = fmt.Sprintf("%s-%d", u.name, *seq)
		}
		u.mu.Unlock()
		if err := f.post(ctx, c, u, k, val); err != nil {
			return err
		}
	}
	v, err := c.View(ctx, keys())
	if err != nil {
		return fmt.Errorf("view: %w", err)
	}
	u.mu.Lock()
	u.c, u.view = c, v
	u.mu.Unlock()
	return nil
}

// overwrite posts a new value to a random row every postEvery until ctx
// ends (nil) or the connection does (why).
func (f *fleet) overwrite(ctx context.Context, c *client.Client, u *uploader, rng *rand.Rand, seq *int) error {
	t := time.NewTicker(postEvery)
	defer t.Stop()
	ks := keys()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.Done():
			return c.Err()
		case <-t.C:
			*seq++
			// A refused or failed Post is not an end by itself: the row
			// stays dirty and a later Post settles it.
			f.post(ctx, c, u, ks[rng.IntN(len(ks))], fmt.Sprintf("%s-%d", u.name, *seq))
		}
	}
}

// post posts one row under the fleet's gate and records its value: the
// latest when the server confirmed it or keeps placing it
// (cloud.ErrTimeout), unchanged when it refused it, and dirty when the
// outcome is unknown.
func (f *fleet) post(ctx context.Context, c *client.Client, u *uploader, k cloud.Key, val string) error {
	f.gate.RLock()
	defer f.gate.RUnlock()
	pctx, cancel := context.WithTimeout(ctx, postTimeout)
	defer cancel()
	err := c.Post(pctx, k, []byte(val))
	var refused *cloud.Error
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		u.lastErr = err
	}
	switch {
	case err == nil || errors.Is(err, cloud.ErrTimeout):
		u.latest[k] = val
		delete(u.dirty, k)
	case errors.As(err, &refused):
		// nothing changed
	default:
		u.dirty[k] = true
	}
	return err
}
