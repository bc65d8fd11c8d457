package client

import (
	"context"
	"fmt"
	"sync"

	"github.com/cloudrift/cloudrift/protocol"
)

// Cloud memory: rows of shared memory that live while their uploader is
// connected, readable and subscribable by every client and server of the
// system. A row is (key, uploader) → data; this client's rows are
// uploaded as its ClientRef, with its remote address, through its
// external server, and deleted when it disconnects. See Post, Release,
// Get, Unsubscribe and View.
//
// Every operation is answered by the server (or fails with the client's
// end, or ctx's): an error the server returned is a *CloudError, which
// matches the ErrCloud sentinel of its code with errors.Is.

// Cloud-memory types, shared with the wire format.
type (
	// Key names what a row is about.
	Key = protocol.CloudKey
	// Row is one row: its key, its uploader's ClientRef and address, the
	// server it came through, and its data.
	Row = protocol.CloudRow
	// Query selects rows: keys (in the order results come back), an
	// optional uploader filter (RakNet's specificSystems), offset, limit,
	// and Subscribe.
	Query = protocol.CloudQuery
	// ClientRef is the system-wide address of a client (or, with ID 0, a
	// server).
	ClientRef = protocol.ClientRef
)

// Cloud-memory errors: a *CloudError matches the one of its code. They
// are protocol's, shared with the plugin API.
var (
	ErrCloudBadRequest           = protocol.ErrCloudBadRequest
	ErrCloudUnavailable          = protocol.ErrCloudUnavailable
	ErrCloudRejected             = protocol.ErrCloudRejected
	ErrCloudUploadLimit          = protocol.ErrCloudUploadLimit
	ErrCloudRowTooLarge          = protocol.ErrCloudRowTooLarge
	ErrCloudTooManyKeys          = protocol.ErrCloudTooManyKeys
	ErrCloudTooManySubscriptions = protocol.ErrCloudTooManySubscriptions
	ErrCloudNotSubscribed        = protocol.ErrCloudNotSubscribed
	ErrCloudSubscribedToAll      = protocol.ErrCloudSubscribedToAll
	ErrCloudTimeout              = protocol.ErrCloudTimeout
	ErrCloudShuttingDown         = protocol.ErrCloudShuttingDown
)

// Cloud-memory API types, shared with the plugin API.
type (
	// CloudError is a cloud-memory operation the server refused or could
	// not complete: its code and message. Its Is matches the ErrCloud
	// sentinel of its code.
	CloudError = protocol.CloudError
	// Result is the answer to Get: rows in query key order, then uploader
	// order (server ID, then client ID), after Offset and within Limit,
	// with Total, Truncated, Partial and Missing.
	Result = protocol.CloudGetResult
	// NotificationType says what a Notification is about.
	NotificationType = protocol.CloudNotificationType
	// Notification is one change to a subscribed key. Its rows belong to
	// the receiver.
	Notification = protocol.CloudNotification
)

// Notification types (see protocol.CloudNotificationType).
const (
	// Updated: Row was created (Created) or overwritten.
	Updated = protocol.CloudNotifyUpdated
	// Deleted: Row was deleted (released, or its uploader disconnected,
	// or the uploader's server is gone); Row holds its last value.
	Deleted = protocol.CloudNotifyDeleted
	// Resync: Rows replace everything known about Key that matches the
	// subscription (the subscription moved to another replica, a partial
	// Get's missing key arrived, or notifications had to be dropped).
	Resync = protocol.CloudNotifyResync
)

// cloudState is a client's cloud-memory bookkeeping. Its mutex comes
// after no other lock of the client.
type cloudState struct {
	mu      sync.Mutex
	seq     uint32
	pending map[uint32]*cloudCall
	notes   chan Notification // nil until Notifications is called
	views   map[Key][]*View
	ended   bool // the client ended: notes is closed
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
	res *protocol.CloudResult
}

// Notifications returns the channel on which cloud-memory notifications
// arrive when Options.OnCloud is nil, creating it on the first call:
// notifications that arrive before that are not queued. As with Messages,
// the client stops reading from the server while the channel is full, and
// the channel is closed when the client ends. It returns nil when OnCloud
// is set.
func (c *Client) Notifications() <-chan Notification {
	if c.opts.OnCloud != nil {
		return nil
	}
	c.cloud.mu.Lock()
	defer c.cloud.mu.Unlock()
	if c.cloud.notes == nil {
		c.cloud.notes = make(chan Notification, c.opts.QueueSize)
		if c.cloud.ended {
			close(c.cloud.notes)
		}
	}
	return c.cloud.notes
}

// Post creates or overwrites this client's row under key with data (the
// SDK does not keep data). Subscribers get Updated. It returns once the
// key's owner confirmed. An ErrCloudTimeout means the server keeps the
// row and keeps placing it; every other error means nothing changed. A
// server still waiting for its first cloud replica holds the Post until
// one links; ErrCloudUnavailable means every replica it had is gone.
func (c *Client) Post(ctx context.Context, key Key, data []byte) error {
	if err := key.Validate(); err != nil {
		return &CloudError{Code: protocol.CloudBadRequest, Message: err.Error()}
	}
	_, err := c.cloudCall(ctx, protocol.KindCloudPost, nil, func(req uint32) []byte {
		m := protocol.CloudPost{Req: req, Key: key, Data: data}
		return m.AppendTo(make([]byte, 0, 8+len(key.Primary)+len(data)))
	})
	return err
}

// Release deletes this client's rows under keys (rows of other uploaders
// are untouched); subscribers get Deleted with the last value.
func (c *Client) Release(ctx context.Context, keys ...Key) error {
	if err := validKeys(keys); err != nil {
		return err
	}
	_, err := c.cloudCall(ctx, protocol.KindCloudRelease, nil, func(req uint32) []byte {
		return (&protocol.CloudRelease{Req: req, Keys: keys}).AppendTo(nil)
	})
	return err
}

// Get reads rows. With q.Subscribe it also subscribes to q.Keys,
// atomically with the snapshot: every later change arrives as a
// notification, none is lost or doubled. Subscribing again to a key
// replaces its uploader filter. Notifications that follow the snapshot
// may reach the OnCloud handler before Get returns; a View applies them in
// the right order for you.
func (c *Client) Get(ctx context.Context, q Query) (*Result, error) {
	if err := validKeys(q.Keys); err != nil {
		return nil, err
	}
	ans, err := c.cloudCall(ctx, protocol.KindCloudGet, nil, func(req uint32) []byte {
		return (&protocol.CloudGet{Req: req, Query: q}).AppendTo(nil)
	})
	if err != nil {
		return nil, err
	}
	return resultOf(ans.res), nil
}

func resultOf(r *protocol.CloudResult) *Result {
	return &Result{Rows: r.Rows, Total: int(r.Total), Truncated: r.Truncated, Partial: r.Partial, Missing: r.Missing}
}

// Unsubscribe ends the subscription to each key or, with uploaders,
// removes those uploaders from it. Unsubscribing a key (or an uploader)
// that is not subscribed is ErrCloudNotSubscribed, and removing uploaders
// from a subscription to every uploader is ErrCloudSubscribedToAll; in
// both cases nothing changes.
func (c *Client) Unsubscribe(ctx context.Context, keys []Key, uploaders ...ClientRef) error {
	if err := validKeys(keys); err != nil {
		return err
	}
	_, err := c.cloudCall(ctx, protocol.KindCloudUnsubscribe, nil, func(req uint32) []byte {
		return (&protocol.CloudUnsubscribe{Req: req, Keys: keys, Uploaders: uploaders}).AppendTo(nil)
	})
	return err
}

func validKeys(keys []Key) error {
	if len(keys) == 0 {
		return &CloudError{Code: protocol.CloudBadRequest, Message: "no keys"}
	}
	if len(keys) > protocol.MaxCloudKeys {
		return &CloudError{Code: protocol.CloudTooManyKeys, Message: fmt.Sprintf("%d keys", len(keys))}
	}
	for _, k := range keys {
		if err := k.Validate(); err != nil {
			return &CloudError{Code: protocol.CloudBadRequest, Message: err.Error()}
		}
	}
	return nil
}

// cloudCall sends one request, built by encode with its request ID, and
// waits for the answer, ctx, or the client's end.
func (c *Client) cloudCall(ctx context.Context, kind protocol.Kind, view *viewGet, encode func(req uint32) []byte) (cloudAnswer, error) {
	if err := ctx.Err(); err != nil {
		return cloudAnswer{}, fmt.Errorf("client: cloud %s: %w", kind, err) // nothing was sent
	}
	cs := &c.cloud
	cl := &cloudCall{ch: make(chan cloudAnswer, 1), view: view}
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
		return cloudAnswer{}, fmt.Errorf("%w: %d-byte %s request, the server accepts at most %d", ErrMessageTooLarge, len(payload), kind, c.max)
	}
	if err := c.write(kind, 0, payload); err != nil {
		forget()
		return cloudAnswer{}, err
	}
	select {
	case a := <-cl.ch:
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
}

// cloudFrame handles a cloud-memory message on the read goroutine. It
// returns false when Close was called and the read loop should stop, and
// an error when the message does not decode.
func (c *Client) cloudFrame(f protocol.Frame) (bool, error) {
	cs := &c.cloud
	switch f.Kind {
	case protocol.KindCloudReply:
		var m protocol.CloudReply
		if err := m.Decode(f.Payload); err != nil {
			return true, err
		}
		if cl := cs.take(m.Req); cl != nil {
			cl.ch <- cloudAnswer{err: protocol.NewCloudError(m.Code, m.Message)}
		}
	case protocol.KindCloudResult:
		var m protocol.CloudResult
		if err := m.Decode(f.Payload); err != nil {
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
		cl.ch <- cloudAnswer{err: protocol.NewCloudError(m.Code, m.Message), res: &m}
	case protocol.KindCloudNotify:
		var m protocol.CloudNotice
		if err := m.Decode(f.Payload); err != nil {
			return true, err
		}
		row := m.Row
		row.Data = append([]byte(nil), row.Data...)
		n := Notification{Type: Updated, Key: row.Key, Row: row, Created: m.Created}
		if m.Type == protocol.CloudDeleted {
			n.Type = Deleted
		}
		c.applyNotification(&n)
		return c.deliverNotification(n), nil
	case protocol.KindCloudResync:
		var m protocol.CloudResync
		if err := m.Decode(f.Payload); err != nil {
			return true, err
		}
		n := Notification{Type: Resync, Key: m.Key, Rows: copyRows(m.Rows), Truncated: m.Truncated}
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
func copyRows(rows []Row) []Row {
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

// deliverNotification hands n to OnCloud or the Notifications channel.
func (c *Client) deliverNotification(n Notification) bool {
	select {
	case <-c.quit:
		return false
	default:
	}
	if c.opts.OnCloud != nil {
		c.opts.OnCloud(n)
		return true
	}
	c.cloud.mu.Lock()
	ch := c.cloud.notes
	c.cloud.mu.Unlock()
	if ch == nil {
		return true
	}
	select {
	case ch <- n:
		return true
	case <-c.quit:
		return false
	}
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
