package fileregistry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/registry"
)

// Connector is the file registry.Connector. Create it with New. All
// methods are safe for concurrent use.
type Connector struct {
	root string // Dir/System, escaped
	poll time.Duration
	ttl  time.Duration
	log  zerolog.Logger

	// ctx is cancelled by Close: it ends every watch.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // watch goroutines

	mu     sync.Mutex
	closed bool     // guarded by mu; set once by Close
	self   *ownFile // guarded by mu; nil when not registered
}

// ownFile is the registered member's file and its renewal goroutine.
type ownFile struct {
	path string
	rec  record
	stop context.CancelFunc
	done chan struct{} // closed when the renewal goroutine has ended
}

var _ registry.Connector = (*Connector)(nil)

// New returns a connector for the system of opts on settings s, after
// s.Validate. It touches no file until Register or Watch.
func New(s Settings, opts registry.Options) (*Connector, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if opts.System == "" {
		return nil, fmt.Errorf("%w: empty system name", ErrInvalidConfig)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Connector{
		root: filepath.Join(s.Dir, escape(opts.System)),
		poll: s.Poll, ttl: s.TTL, log: opts.Logger,
		ctx: ctx, cancel: cancel,
	}, nil
}

func (c *Connector) groupDir(group string) string { return filepath.Join(c.root, escape(group)) }

// Register writes self's file and renews it every TTL/3.
func (c *Connector) Register(ctx context.Context, self registry.Member) error {
	if err := self.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return registry.ErrClosed
	case c.self != nil:
		return registry.ErrAlreadyRegistered
	}
	own := &ownFile{
		path: filepath.Join(c.groupDir(self.Group), escape(self.ID)+suffix),
		rec:  toRecord(self),
		done: make(chan struct{}),
	}
	if err := writeRecord(own.path, own.rec); err != nil {
		return fmt.Errorf("fileregistry: register %s: %w", self.ID, err)
	}
	rctx, stop := context.WithCancel(context.Background())
	own.stop = stop
	c.self = own
	go c.renew(rctx, own)
	return nil
}

// renew keeps own's file fresh until ctx ends or another incarnation
// takes the file over.
func (c *Connector) renew(ctx context.Context, own *ownFile) {
	defer close(own.done)
	t := time.NewTicker(c.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r, err := readRecord(own.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			err = writeRecord(own.path, own.rec) // removed behind our back: write it again
		case err != nil:
		case r.ID != own.rec.ID || r.Incarnation != own.rec.Incarnation:
			c.log.Warn().Str("id", own.rec.ID).Uint64("incarnation", r.Incarnation).Msg("another incarnation took over this member's file; no longer renewing it")
			return
		default:
			now := time.Now()
			err = os.Chtimes(own.path, now, now)
		}
		if err != nil {
			c.log.Warn().Err(err).Str("file", own.path).Msg("renewing the member file failed")
		}
	}
}

// Deregister stops the renewal and removes the member's file, if it still
// holds this connector's incarnation.
func (c *Connector) Deregister(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return registry.ErrClosed
	}
	return c.deregisterLocked()
}

func (c *Connector) deregisterLocked() error {
	own := c.self
	if own == nil {
		return registry.ErrNotRegistered
	}
	c.self = nil
	own.stop()
	<-own.done
	r, err := readRecord(own.path)
	if err != nil || r.ID != own.rec.ID || r.Incarnation != own.rec.Incarnation {
		return nil // gone, or another incarnation's
	}
	if err := os.Remove(own.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fileregistry: deregister %s: %w", own.rec.ID, err)
	}
	return nil
}

// Watch lists group's directory now and every poll interval.
func (c *Connector) Watch(ctx context.Context, group string) (<-chan []registry.Member, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, registry.ErrClosed
	}
	pub := registry.NewPublisher()
	c.wg.Add(1)
	go c.watch(ctx, group, pub)
	return pub.C(), nil
}

func (c *Connector) watch(ctx context.Context, group string, pub *registry.Publisher) {
	defer c.wg.Done()
	defer pub.Close()
	dir := c.groupDir(group)
	t := time.NewTicker(c.poll)
	defer t.Stop()
	failing := false
	for {
		ms, err := listGroup(dir, group, c.ttl, time.Now())
		switch {
		case err != nil && !failing:
			failing = true
			c.log.Warn().Err(err).Str("group", group).Msg("cannot list the group's members; keeping the last known set")
		case err == nil:
			if failing {
				failing = false
				c.log.Info().Str("group", group).Msg("listing the group's members again")
			}
			pub.Publish(ms)
		}
		select {
		case <-ctx.Done():
			return
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close deregisters (best effort), ends every watch and waits for them. A
// second Close returns nil at once.
func (c *Connector) Close() error {
	c.mu.Lock()
	first := !c.closed
	c.closed = true
	var err error
	if first && c.self != nil {
		err = c.deregisterLocked()
	}
	c.mu.Unlock()
	if first {
		c.cancel()
		c.wg.Wait()
	}
	return err
}
