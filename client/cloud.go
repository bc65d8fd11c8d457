package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
)

// Cloud memory: rows of shared memory that live while their uploader is
// connected, readable and subscribable by every client and server of the
// system. A row is (key, uploader) → data; this client's rows are
// uploaded as its ClientRef, with its remote address, through its
// external server, and deleted when it disconnects. See Post, Release,
// Get, Unsubscribe and View.
//
// Every operation is answered by the server (or fails with the client's
// end, or ctx's): an error the server returned is a *cloud.Error, which
// matches the cloud.Err sentinel of its code with errors.Is.

// ClientRef is the system-wide address of a client (or, with ID 0, a
// server).
type ClientRef = protocol.ClientRef

// cloudState is a client's cloud-memory bookkeeping. Its mutex comes
// after no other lock of the client.
type cloudState struct {
	mu      sync.Mutex
	seq     uint32
	pending map[uint32]*cloudCall
	notes   chan cloud.Notification // made by Dial unless OnCloud is set
	dropped atomic.Uint64           // notifications that found notes full
	views   map[cloud.Key][]*View
	ended   bool // the client ended: notes is closed

	// With keep (Options.keepPosted), posted holds this client's rows
	// that were posted and not released, the latest data of each key,
	// and touched the keys the application posted or released itself.
	// postMu orders recording a row with writing its request, so the
	// record and the server see the same order; it comes before mu.
	keep    bool
	postMu  sync.Mutex
	posted  map[cloud.Key]postedRow
	touched map[cloud.Key]bool
	postSeq uint64

	// strs keeps the strings of decoded rows (keys, uploaders,
	// addresses) for reuse; only the read goroutine uses it.
	strs cloudwire.Strings
	// free holds answered calls for reuse (*cloudCall): a call is put
	// back only by the goroutine that received its answer, when the read
	// goroutine no longer holds it.
	free sync.Pool
}

// postedRow is the data of a row a client posted; seq tells a later post
// of the same key from this one.
type postedRow struct {
	data []byte
	seq  uint64
}

// cloudCall is a request waiting for its answer.
type cloudCall struct {
	ch chan cloudAnswer // capacity 1
	// view, when set, takes the snapshot of a view's Get on the read
	// goroutine, before any later notification is applied.
	view *viewGet
}

type cloudAnswer struct {
	err error
	res *cloudwire.Result
}

// Notifications returns the channel on which cloud-memory notifications
// arrive when Options.OnCloud is nil (nil when it is set). The channel is
// made with the client, so no notification is missed before the first
// call, and closed when the client ends. It holds Options.QueueSize
// notifications: one that finds it full is dropped (views are updated all
// the same) and counted by DroppedNotifications; the client never stops
// reading from the server for it.
func (c *Client) Notifications() <-chan cloud.Notification {
	return c.cloud.notes
}

// DroppedNotifications returns how many notifications found the
// Notifications channel full and were dropped.
func (c *Client) DroppedNotifications() uint64 { return c.cloud.dropped.Load() }

// Post creates or overwrites this client's row under key with data (the
// SDK does not keep data). Subscribers get Updated.
//
// A nil error means the key's owner replica stored the row (in memory;
// no other replica holds a copy): a Get that reaches that owner
// afterwards, this client's or anyone's, sees this value or a later one
// (until the row is released or deleted with this client).
// This client's Posts to one key are applied in the order it made them; a
// nil error for one also answers earlier ones of the same key still
// waiting, whose values it replaced. If the owner is lost or the key
// moves to another replica, the client's server posts the row again to
// the new owner; until then a Get may miss it. The row is deleted when
// this client disconnects (or its server stops).
//
// An error matching cloud.ErrTimeout, or ctx's error once the request was
// sent, leaves the row with the server, which keeps placing it: it may
// still appear. Every other error (cloud.ErrBadRequest, ErrRowTooLarge,
// ErrUploadLimit, ErrRejected, ErrRateLimited, ErrUnavailable, ...) means
// this Post changed nothing; the row keeps its last stored value.
// cloud.ErrShuttingDown, and the client's end (ErrClosed, a lost
// connection), take every row of this client with them. A server still
// waiting for its first cloud replica holds the Post until
// one links; cloud.ErrUnavailable means every replica it had is gone.
func (c *Client) Post(ctx context.Context, key cloud.Key, data []byte) error {
	if err := key.Validate(); err != nil {
		return &cloud.Error{Code: cloud.CodeBadRequest, Message: err.Error()}
	}
	return c.post(ctx, key, data, true)
}

// post posts a row; with keep it records it first (skipping it, when
// user is false, if the application has posted or released the key on
// this client itself: a row carried over from an earlier connection must
// not overwrite it). A post that certainly failed is forgotten again.
func (c *Client) post(ctx context.Context, key cloud.Key, data []byte, user bool) error {
	cs := &c.cloud
	encode := func(req uint32) []byte {
		m := cloudwire.Post{Req: req, Key: key, Data: data}
		return m.AppendTo(make([]byte, 0, 8+len(key.Primary)+len(data)))
	}
	if !cs.keep {
		_, err := c.cloudCall(ctx, protocol.KindCloudPost, nil, encode)
		return err
	}
	cs.postMu.Lock()
	if !user && cs.touched[key] {
		cs.postMu.Unlock()
		return nil
	}
	cs.mu.Lock()
	if cs.posted == nil {
		cs.posted = make(map[cloud.Key]postedRow)
		cs.touched = make(map[cloud.Key]bool)
	}
	if user {
		cs.touched[key] = true
	}
	cs.postSeq++
	seq := cs.postSeq
	cs.posted[key] = postedRow{data: slices.Clone(data), seq: seq}
	cs.mu.Unlock()
	wait, err := c.cloudStart(ctx, protocol.KindCloudPost, nil, encode)
	cs.postMu.Unlock()
	sent := err == nil
	if sent {
		_, err = wait()
	}
	if failedForSure(err) || (!sent && ctx.Err() != nil) {
		cs.mu.Lock()
		if r, ok := cs.posted[key]; ok && r.seq == seq {
			delete(cs.posted, key)
		}
		cs.mu.Unlock()
	}
	return err
}

// failedForSure reports whether a post that returned err certainly did
// not create its row: the server refused it, or it was never sent. A
// timeout, the client's end or ctx's leave the row possibly in place.
func failedForSure(err error) bool {
	if err == nil {
		return false
	}
	var ce *cloud.Error
	if errors.As(err, &ce) {
		return ce.Code != cloud.CodeTimeout
	}
	return errors.Is(err, ErrMessageTooLarge)
}

// postedRows returns a copy of the rows this client posted and did not
// release (with Options.keepPosted; nil otherwise).
func (c *Client) postedRows() map[cloud.Key][]byte {
	cs := &c.cloud
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.posted) == 0 {
		return nil
	}
	out := make(map[cloud.Key][]byte, len(cs.posted))
	for k, r := range cs.posted {
		out[k] = r.data
	}
	return out
}

// Release deletes this client's rows under keys (rows of other uploaders
// are untouched); subscribers get Deleted with the last value.
func (c *Client) Release(ctx context.Context, keys ...cloud.Key) error {
	if err := validKeys(keys); err != nil {
		return err
	}
	encode := func(req uint32) []byte {
		return (&cloudwire.Release{Req: req, Keys: keys}).AppendTo(nil)
	}
	cs := &c.cloud
	if !cs.keep {
		_, err := c.cloudCall(ctx, protocol.KindCloudRelease, nil, encode)
		return err
	}
	cs.postMu.Lock()
	cs.mu.Lock()
	if cs.posted == nil {
		cs.posted = make(map[cloud.Key]postedRow)
		cs.touched = make(map[cloud.Key]bool)
	}
	for _, k := range keys {
		delete(cs.posted, k)
		cs.touched[k] = true
	}
	cs.mu.Unlock()
	wait, err := c.cloudStart(ctx, protocol.KindCloudRelease, nil, encode)
	cs.postMu.Unlock()
	if err != nil {
		return err
	}
	_, err = wait()
	return err
}

// Get reads rows. With q.Subscribe it also subscribes to q.Keys,
// atomically with the snapshot: every later change arrives as a
// notification, none is lost or doubled. Subscribing again to a key
// replaces its uploader filter. Notifications that follow the snapshot
// may reach the OnCloud handler before Get returns; a View applies them in
// the right order for you.
func (c *Client) Get(ctx context.Context, q cloud.Query) (*cloud.Result, error) {
	if err := validKeys(q.Keys); err != nil {
		return nil, err
	}
	ans, err := c.cloudCall(ctx, protocol.KindCloudGet, nil, func(req uint32) []byte {
		return (&cloudwire.Get{Req: req, Query: q}).AppendTo(nil)
	})
	if err != nil {
		return nil, err
	}
	return resultOf(ans.res), nil
}

func resultOf(r *cloudwire.Result) *cloud.Result {
	return &cloud.Result{Rows: r.Rows, Total: int(r.Total), Truncated: r.Truncated, Partial: r.Partial, Missing: r.Missing}
}

// Unsubscribe ends the subscription to each key or, with uploaders,
// removes those uploaders from it. Unsubscribing a key (or an uploader)
// that is not subscribed is cloud.ErrNotSubscribed, and removing uploaders
// from a subscription to every uploader is cloud.ErrSubscribedToAll; in
// both cases nothing changes.
func (c *Client) Unsubscribe(ctx context.Context, keys []cloud.Key, uploaders ...ClientRef) error {
	if err := validKeys(keys); err != nil {
		return err
	}
	_, err := c.cloudCall(ctx, protocol.KindCloudUnsubscribe, nil, func(req uint32) []byte {
		return (&cloudwire.Unsubscribe{Req: req, Keys: keys, Uploaders: uploaders}).AppendTo(nil)
	})
	return err
}

func validKeys(keys []cloud.Key) error {
	if len(keys) == 0 {
		return &cloud.Error{Code: cloud.CodeBadRequest, Message: "no keys"}
	}
	if len(keys) > cloud.MaxKeys {
		return &cloud.Error{Code: cloud.CodeTooManyKeys, Message: fmt.Sprintf("%d keys", len(keys))}
	}
	for _, k := range keys {
		if err := k.Validate(); err != nil {
			return &cloud.Error{Code: cloud.CodeBadRequest, Message: err.Error()}
		}
	}
	return nil
}

// cloudCall sends one request, built by encode with its request ID, and
// waits for the answer, ctx, or the client's end.
func (c *Client) cloudCall(ctx context.Context, kind protocol.Kind, view *viewGet, encode func(req uint32) []byte) (cloudAnswer, error) {
	wait, err := c.cloudStart(ctx, kind, view, encode)
	if err != nil {
		return cloudAnswer{}, err
	}
	return wait()
}

// cloudStart sends one request and returns the function that waits for
// its answer, ctx, or the client's end (call it once). An error means
// nothing is pending.
func (c *Client) cloudStart(ctx context.Context, kind protocol.Kind, view *viewGet, encode func(req uint32) []byte) (func() (cloudAnswer, error), error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("client: cloud %s: %w", kind, err) // nothing was sent
	}
	cs := &c.cloud
	cl, _ := cs.free.Get().(*cloudCall)
	if cl == nil {
		cl = &cloudCall{ch: make(chan cloudAnswer, 1)}
	}
	cl.view = view
	cs.mu.Lock()
	if cs.pending == nil {
		cs.pending = make(map[uint32]*cloudCall)
	}
	cs.seq++
	for cs.pending[cs.seq] != nil || cs.seq == 0 {
		cs.seq++
	}
	req := cs.seq
	cs.pending[req] = cl
	cs.mu.Unlock()
	forget := func() {
		cs.mu.Lock()
		delete(cs.pending, req)
		cs.mu.Unlock()
	}
	payload := encode(req)
	if c.max > 0 && len(payload) > c.max {
		forget()
		return nil, fmt.Errorf("%w: %d-byte %s request, the server accepts at most %d", ErrMessageTooLarge, len(payload), kind, c.max)
	}
	if err := c.write(kind, 0, payload); err != nil {
		forget()
		return nil, err
	}
	return func() (cloudAnswer, error) {
		select {
		case a := <-cl.ch:
			// The read goroutine took cl out of pending before answering:
			// no one else holds it, and its channel is empty again.
			cl.view = nil
			cs.free.Put(cl)
			return a, a.err
		case <-ctx.Done():
			forget()
			return cloudAnswer{}, fmt.Errorf("client: cloud %s: %w", kind, ctx.Err())
		case <-c.done:
			forget()
			select {
			case a := <-cl.ch:
				return a, a.err
			default:
			}
			return cloudAnswer{}, c.sendable()
		}
	}, nil
}

// cloudFrame handles a cloud-memory message on the read goroutine. It
// returns false when Close was called and the read loop should stop, and
// an error when the message does not decode.
func (c *Client) cloudFrame(f protocol.Frame) (bool, error) {
	cs := &c.cloud
	switch f.Kind {
	case protocol.KindCloudReply:
		var m cloudwire.Reply
		if err := m.Decode(f.Payload); err != nil {
			return true, err
		}
		if cl := cs.take(m.Req); cl != nil {
			cl.ch <- cloudAnswer{err: cloud.NewError(m.Code, m.Message)}
		}
	case protocol.KindCloudResult:
		var m cloudwire.Result
		if err := m.DecodeWith(f.Payload, &cs.strs); err != nil {
			return true, err
		}
		cl := cs.take(m.Req)
		if cl == nil {
			return true, nil
		}
		m.Rows = copyRows(m.Rows)
		if cl.view != nil {
			c.applySnapshot(cl.view, &m)
		}
		cl.ch <- cloudAnswer{err: cloud.NewError(m.Code, m.Message), res: &m}
	case protocol.KindCloudNotify:
		var m cloudwire.Notice
		if err := m.DecodeWith(f.Payload, &cs.strs); err != nil {
			return true, err
		}
		row := m.Row
		row.Data = append([]byte(nil), row.Data...)
		n := cloud.Notification{Type: cloud.NotifyUpdated, Key: row.Key, Row: row, Created: m.Created}
		if m.Type == cloudwire.Deleted {
			n.Type = cloud.NotifyDeleted
		}
		c.applyNotification(&n)
		return c.deliverNotification(n), nil
	case protocol.KindCloudResync:
		var m cloudwire.Resync
		if err := m.DecodeWith(f.Payload, &cs.strs); err != nil {
			return true, err
		}
		n := cloud.Notification{Type: cloud.NotifyResync, Key: m.Key, Rows: copyRows(m.Rows), Truncated: m.Truncated}
		c.applyNotification(&n)
		return c.deliverNotification(n), nil
	}
	return true, nil
}

func (cs *cloudState) take(req uint32) *cloudCall {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cl := cs.pending[req]
	delete(cs.pending, req)
	return cl
}

// copyRows copies rows whose data alias a read buffer into one block.
func copyRows(rows []cloud.Row) []cloud.Row {
	n := 0
	for _, r := range rows {
		n += len(r.Data)
	}
	buf := make([]byte, 0, n)
	for i := range rows {
		start := len(buf)
		buf = append(buf, rows[i].Data...)
		rows[i].Data = buf[start:len(buf):len(buf)]
	}
	return rows
}

// deliverNotification hands n to OnCloud or the Notifications channel; it
// reports false when Close was called.
func (c *Client) deliverNotification(n cloud.Notification) bool {
	select {
	case <-c.quit:
		return false
	default:
	}
	if c.opts.OnCloud != nil {
		c.opts.OnCloud(n)
		return true
	}
	select {
	case c.cloud.notes <- n:
	default:
		c.cloud.dropped.Add(1)
	}
	return true
}

// endCloud closes the Notifications channel and ends every view; it runs
// once, when the client ends.
func (c *Client) endCloud() {
	cs := &c.cloud
	cs.mu.Lock()
	cs.ended = true
	if cs.notes != nil {
		close(cs.notes)
	}
	var views []*View
	for _, vs := range cs.views {
		views = append(views, vs...)
	}
	cs.mu.Unlock()
	for _, v := range views {
		v.signal()
	}
}
