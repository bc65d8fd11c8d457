package cloudmemory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
)

// maxSessionQueue is how many notifications a plugin's handler may fall
// behind before the backlog is dropped and replaced by resyncs.
const maxSessionQueue = 8192

// session is one plugin's plugins.CloudMemory. Its uploader identity is
// the server's; its subscriptions are its own. Notifications are queued
// and handed to the plugin's handler on a goroutine of the session's, in
// order.
type session struct {
	c      *Caller
	name   string
	notify func(cloud.Notification)
	sub    *subscriber

	mu      sync.Mutex // guards the fields below
	queue   []cloud.Notification
	running bool // a drain goroutine runs
}

var _ plugins.CloudMemory = (*session)(nil)

// CloudSession implements extension.CloudMemoryProvider.
func (c *Caller) CloudSession(name string, notify func(cloud.Notification)) plugins.CloudMemory {
	s := &session{c: c, name: name, notify: notify}
	s.sub = &subscriber{sess: s, entries: make(map[key]*subEntry)}
	return s
}

// pushLocked queues a notification (Caller.mu held). A queue at its limit
// is dropped and every subscription of the session resyncs.
func (s *session) pushLocked(c *Caller, n cloud.Notification) {
	if s.notify == nil || c.stopped {
		return
	}
	s.mu.Lock()
	if len(s.queue) >= maxSessionQueue {
		s.queue = nil
		s.mu.Unlock()
		c.log.Warn().Str("session", s.name).Int("dropped", maxSessionQueue).
			Msg("cloud notifications fell behind; dropped them and resyncing the subscriptions")
		c.resyncSubscriberLocked(s.sub)
		return
	}
	s.queue = append(s.queue, n)
	start := !s.running
	s.running = true
	s.mu.Unlock()
	if start {
		c.wg.Add(1)
		go s.drain()
	}
}

func (s *session) drain() {
	defer s.c.wg.Done()
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		if len(batch) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		for _, n := range batch {
			select {
			case <-s.c.stop:
				s.mu.Lock()
				s.running = false
				s.mu.Unlock()
				return
			default:
			}
			s.notify(n)
		}
	}
}

func (s *session) ready() error {
	if !s.c.started.Load() {
		return &cloud.Error{Code: cloud.CodeUnavailable, Message: "the cloud-memory caller has not started"}
	}
	return nil
}

func wait[T any](ctx context.Context, ch <-chan T) (T, error) {
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("cloud memory: %w", ctx.Err())
	}
}

// Ref implements plugins.CloudMemory.
func (s *session) Ref() plugins.ClientRef {
	if !s.c.started.Load() {
		return ref{}
	}
	return s.c.self
}

// Post implements plugins.CloudMemory.
func (s *session) Post(ctx context.Context, k cloud.Key, data []byte) error {
	if err := s.ready(); err != nil {
		return err
	}
	ch := make(chan error, 1)
	s.c.post(s.c.self, "", k, data, func(code cloud.Code, msg string) { ch <- cloud.NewError(code, msg) })
	err, werr := wait(ctx, ch)
	if werr != nil {
		return werr
	}
	return err
}

// Release implements plugins.CloudMemory.
func (s *session) Release(ctx context.Context, keys ...cloud.Key) error {
	if err := s.ready(); err != nil {
		return err
	}
	ch := make(chan error, 1)
	s.c.release(s.c.self, "", keys, func(code cloud.Code, msg string) { ch <- cloud.NewError(code, msg) })
	err, werr := wait(ctx, ch)
	if werr != nil {
		return werr
	}
	return err
}

// Get implements plugins.CloudMemory.
func (s *session) Get(ctx context.Context, q cloud.Query) (*cloud.Result, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	ch := make(chan *getResult, 1)
	s.c.get(func() *subscriber { return s.sub }, s.c.self, "", q, func(r *getResult) {
		r.rows = copyRows(r.rows) // they may be a frame's, valid during this call
		ch <- r
	})
	r, err := wait(ctx, ch)
	if err != nil {
		return nil, err
	}
	if err := cloud.NewError(r.code, r.msg); err != nil {
		return nil, err
	}
	return r.public(), nil
}

// Unsubscribe implements plugins.CloudMemory.
func (s *session) Unsubscribe(ctx context.Context, keys []cloud.Key, uploaders ...plugins.ClientRef) error {
	if err := s.ready(); err != nil {
		return err
	}
	ch := make(chan error, 1)
	s.c.unsubscribe(func() *subscriber { return s.sub }, s.c.self, "", keys, uploaders,
		func(code cloud.Code, msg string) { ch <- cloud.NewError(code, msg) })
	err, werr := wait(ctx, ch)
	if werr != nil {
		return werr
	}
	return err
}

// ClientFrame implements extension.FrameHandler: the cloud-memory operations
// of this (external) server's game clients, forwarded with their identity.
func (c *Caller) ClientFrame(pc plugins.Client, f protocol.Frame) error {
	start := time.Now()
	switch f.Kind {
	case protocol.KindCloudPost:
		var m cloudwire.Post
		if err := decodeWith(&c.strs, &m, f.Payload); err != nil {
			return err
		}
		c.post(pc.Ref(), pc.RemoteAddr(), m.Key, m.Data, c.replyTo(pc, m.Req, plugins.CloudOpPost, start))
	case protocol.KindCloudRelease:
		var m cloudwire.Release
		if err := m.Decode(f.Payload); err != nil {
			return err
		}
		c.release(pc.Ref(), pc.RemoteAddr(), m.Keys, c.replyTo(pc, m.Req, plugins.CloudOpRelease, start))
	case protocol.KindCloudGet:
		var m cloudwire.Get
		if err := decodeWith(&c.strs, &m, f.Payload); err != nil {
			return err
		}
		req := m.Req
		c.get(func() *subscriber { return c.clientSubLocked(pc) }, pc.Ref(), pc.RemoteAddr(), m.Query, func(r *getResult) {
			res := cloudwire.Result{Req: req, Code: r.code, Message: r.msg, Total: r.total,
				Truncated: r.truncated, Partial: r.partial, Missing: r.missing, Rows: r.rows}
			c.host.RecordClientCloudOp(plugins.CloudOpGet, start, r.code)
			buf := c.bufs.get()
			*buf = res.AppendTo(*buf)
			_ = c.host.SendClientFrame(pc, protocol.KindCloudResult, 0, *buf)
			c.bufs.put(buf)
		})
	case protocol.KindCloudUnsubscribe:
		var m cloudwire.Unsubscribe
		if err := m.Decode(f.Payload); err != nil {
			return err
		}
		sub := func() *subscriber {
			if s := c.clientSub[pc.Ref().ID]; s != nil {
				return s
			}
			return &subscriber{}
		}
		c.unsubscribe(sub, pc.Ref(), pc.RemoteAddr(), m.Keys, m.Uploaders, c.replyTo(pc, m.Req, plugins.CloudOpUnsubscribe, start))
	default:
		return fmt.Errorf("cloud memory: unexpected %s from a game client", f.Kind)
	}
	return nil
}

// replyTo answers a game client's request of kind, received at start,
// and counts it for the operations port; a client that is gone is not
// answered.
func (c *Caller) replyTo(pc plugins.Client, req uint32, kind plugins.CloudOpKind, start time.Time) doneFunc {
	return func(code cloud.Code, msg string) {
		c.host.RecordClientCloudOp(kind, start, code)
		r := cloudwire.Reply{Req: req, Code: code, Message: msg}
		buf := c.bufs.get()
		*buf = r.AppendTo(*buf)
		_ = c.host.SendClientFrame(pc, protocol.KindCloudReply, 0, *buf)
		c.bufs.put(buf)
	}
}

// clientSubLocked returns the subscriber of a game client, making it.
func (c *Caller) clientSubLocked(pc plugins.Client) *subscriber {
	s := c.clientSub[pc.Ref().ID]
	if s == nil {
		s = &subscriber{client: pc, limited: true, entries: make(map[key]*subEntry)}
		c.clientSub[pc.Ref().ID] = s
	}
	return s
}
