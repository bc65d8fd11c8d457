package cloudmemory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
)

// Client is the "cloudmemory-client" plugin: the cloud-memory client of a
// server whose group connects to a cloud-memory group. The runtime
// provisions it (first among the group's plugins) with the cloud group's
// name and the cloud plugin's settings; nobody lists it in a system file.
//
// The client keeps every row uploaded through its server (the server's
// own and, on an external server, its game clients') and where each is
// placed, every subscription of its server's plugins and clients, and the
// replicas it is linked to. Keys are owned by rendezvous hashing over the
// replicas it is linked to; a replica that disagrees (its registry view
// differs for a moment) answers "not owner" and the client retries after
// a backoff. Whenever a replica link comes up or goes down, or a replica
// hands keys over, the client re-posts the rows whose owner moved,
// re-places the subscriptions and sends their subscribers a resync; on a
// new link it brackets the re-posts in a sync session so that the replica
// deletes whatever it still holds from this server that was not posted
// again.
//
// Lock order: Client.mu before session.mu. Methods named *Locked expect
// Client.mu held. Callbacks handed to operations (done functions) run
// with Client.mu held and must not block.
type Client struct {
	// Group is the cloud-memory group (set by the runtime).
	Group string `yaml:"group"`
	// Settings are the cloud plugin's settings (set by the runtime).
	Settings Config `yaml:"settings"`

	cfg    Config
	host   plugins.Host
	log    *zerolog.Logger
	self   ref // this server's uploader identity
	budget int // row bytes one replica result may carry

	started atomic.Bool
	stop    chan struct{}
	wake    chan struct{}
	wg      sync.WaitGroup

	mu        sync.Mutex
	stopped   bool
	gen       uint64 // generation of the latest replica link; 0 until one links
	replicas  map[string]*replica
	ring      ring
	seq       uint64 // request IDs
	rows      map[rowID]*crow
	uploaders map[ref]*uploader
	unplaced  map[rowID]struct{} // rows to place with their owner
	calls     map[uint64]*call   // requests in flight
	subs      map[key]*ksub
	resync    map[key]struct{} // subscriptions to place again
	clientSub map[uint64]*subscriber
	ops       map[*getOp]struct{}
}

var (
	_ plugins.Starter                   = (*Client)(nil)
	_ plugins.Stopper                   = (*Client)(nil)
	_ plugins.Validator                 = (*Client)(nil)
	_ plugins.FrameHandler              = (*Client)(nil)
	_ plugins.ServerConnectedHandler    = (*Client)(nil)
	_ plugins.ServerDisconnectedHandler = (*Client)(nil)
	_ plugins.ServerLeftHandler         = (*Client)(nil)
	_ plugins.ClientDisconnectedHandler = (*Client)(nil)
	_ plugins.CloudMemoryProvider       = (*Client)(nil)
)

// Tuning.
const (
	tick            = 20 * time.Millisecond  // the syncer's period while work is pending
	retryMin        = 10 * time.Millisecond  // first retry after "not owner"
	retryMax        = 250 * time.Millisecond // retry backoff cap
	maxSyncInflight = 512                    // background re-posts in flight per replica
)

// place is where a row or subscription lives: a replica's link generation.
type place struct {
	id  string
	gen uint64 // 0: nowhere
}

type replica struct {
	rs       plugins.RemoteServer
	at       place
	inflight int // background re-posts in flight
	// session lists the rows to post again before CloudSyncEnd; nil when
	// no sync session runs.
	session map[rowID]struct{}
}

type rowID struct {
	k  key
	up ref
}

// crow is a row uploaded through this server.
type crow struct {
	id      rowID
	addr    string
	data    []byte // replaced, never modified in place
	version uint64
	placed  place  // where an owner confirmed it
	sending uint64 // request of the latest post in flight, 0 if none
	// acked is the last state an owner confirmed, restored when a newer
	// post is rejected.
	acked        []byte
	ackedAddr    string
	ackedVersion uint64 // 0: never confirmed
	waiters      []*waiter
	releasing    *releaseOp
	attempts     int
	retryAt      time.Time
}

type uploader struct {
	bytes int // data bytes of its rows
	keys  map[key]struct{}
}

type callKind uint8

const (
	callPost callKind = iota + 1
	callRelease
	callGet
	callResync
)

// call is a request in flight to a replica.
type call struct {
	kind callKind
	to   place
	sync bool // a background re-post
	// post
	row     *crow
	version uint64
	data    []byte
	addr    string
	// release
	rel *releaseOp
	// get
	part *getPart
	// resync
	key key
}

// doneFunc receives an operation's outcome; it runs with Client.mu held.
type doneFunc func(code cloud.Code, msg string)

// waiter is an operation waiting for confirmation.
type waiter struct {
	version uint64
	done    doneFunc
	timer   *time.Timer
	fired   bool
}

// Validate implements plugins.Validator.
func (c *Client) Validate() error {
	if c.Group == "" {
		return errors.New("no cloud group: the runtime provisions this plugin")
	}
	return c.Settings.Validate()
}

// Start implements plugins.Starter.
func (c *Client) Start(_ context.Context, h plugins.Host) error {
	c.cfg = c.Settings.withDefaults()
	c.host = h
	c.log = h.Logger()
	c.self = ref{Server: h.ServerID()}
	c.budget = min(c.cfg.MaxBytesPerDownload, h.MaxFramePayload()/2)
	c.stop = make(chan struct{})
	c.wake = make(chan struct{}, 1)
	c.replicas = make(map[string]*replica)
	c.rows = make(map[rowID]*crow)
	c.uploaders = make(map[ref]*uploader)
	c.unplaced = make(map[rowID]struct{})
	c.calls = make(map[uint64]*call)
	c.subs = make(map[key]*ksub)
	c.resync = make(map[key]struct{})
	c.clientSub = make(map[uint64]*subscriber)
	c.ops = make(map[*getOp]struct{})
	c.wg.Add(1)
	go c.syncLoop()
	c.started.Store(true)
	return nil
}

// Stop implements plugins.Stopper: the replicas delete this server's rows
// at once, and pending operations fail.
func (c *Client) Stop(context.Context) error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	bye := (&cloudwire.SrvSync{Op: cloudwire.SyncBye}).AppendTo(nil)
	for _, rep := range c.replicas {
		_ = rep.rs.SendFrame(protocol.KindCloudSrvSync, 0, bye)
	}
	for _, r := range c.rows {
		c.resolveLocked(r, ^uint64(0), cloud.CodeShuttingDown, "server shutting down")
	}
	for op := range c.ops {
		c.finishGetLocked(op, cloud.CodeShuttingDown, "server shutting down")
	}
	calls := c.calls
	c.calls = make(map[uint64]*call)
	for _, cl := range calls {
		if cl.rel != nil {
			cl.rel.fail(cloud.CodeShuttingDown, "server shutting down")
			c.releaseDoneLocked(cl.rel)
		}
	}
	c.mu.Unlock()
	close(c.stop)
	c.wg.Wait()
	return nil
}

// Ref is this server's uploader identity.
func (c *Client) Ref() plugins.ClientRef { return c.self }

func (c *Client) nextReqLocked() uint64 {
	c.seq++
	return c.seq
}

func (c *Client) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// ownerLocked returns the replica owning k in this server's view, or nil.
func (c *Client) ownerLocked(k key) *replica {
	return c.replicas[c.ring.owner(k)]
}

func (c *Client) isCloud(rs plugins.RemoteServer) bool {
	return rs.Group() == c.Group && rs.Direction() == plugins.Upstream
}

// ServerConnected implements plugins.ServerConnectedHandler: a replica
// link is up. A sync session starts: everything this server placed there
// before is posted again, then the replica deletes what was not.
func (c *Client) ServerConnected(rs plugins.RemoteServer) error {
	if !c.isCloud(rs) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.gen++
	rep := &replica{rs: rs, at: place{id: rs.ID(), gen: c.gen}, session: make(map[rowID]struct{})}
	if old := c.replicas[rs.ID()]; old != nil {
		c.dropReplicaLocked(old)
	}
	c.replicas[rs.ID()] = rep
	c.ring = c.ringLocked()
	_ = rs.SendFrame(protocol.KindCloudSrvSync, 0, (&cloudwire.SrvSync{Op: cloudwire.SyncStart}).AppendTo(nil))
	for id := range c.rows {
		if c.ring.owner(id.k) == rs.ID() {
			rep.session[id] = struct{}{}
		}
	}
	c.reconcileLocked()
	c.log.Debug().Str("replica", rs.ID()).Strs("ring", c.ring.ids).Int("rows", len(rep.session)).Msg("cloud replica linked")
	c.kick()
	return nil
}

func (c *Client) ringLocked() ring {
	ids := make([]string, 0, len(c.replicas))
	for id := range c.replicas {
		ids = append(ids, id)
	}
	return newRing(ids)
}

// ServerDisconnected implements plugins.ServerDisconnectedHandler.
func (c *Client) ServerDisconnected(rs plugins.RemoteServer, _ error) error {
	if !c.isCloud(rs) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rep := c.replicas[rs.ID()]
	if rep == nil || rep.rs != rs {
		return nil
	}
	delete(c.replicas, rs.ID())
	c.ring = c.ringLocked()
	c.dropReplicaLocked(rep)
	c.reconcileLocked()
	c.log.Debug().Str("replica", rs.ID()).Strs("ring", c.ring.ids).Msg("cloud replica unlinked")
	c.kick()
	return nil
}

// ServerLeft implements plugins.ServerLeftHandler.
func (c *Client) ServerLeft(rs plugins.RemoteServer) error { return c.ServerDisconnected(rs, nil) }

// dropReplicaLocked ends every request in flight to rep: they are retried
// with the keys' current owners.
func (c *Client) dropReplicaLocked(rep *replica) {
	now := time.Now()
	for req, cl := range c.calls {
		if cl.to.gen != rep.at.gen {
			continue
		}
		delete(c.calls, req)
		switch cl.kind {
		case callPost:
			if r := cl.row; c.rows[r.id] == r && r.sending == req {
				r.sending = 0
				c.unplaceLocked(r, now)
			}
		case callRelease:
			// The rows there are gone, or the sync session of the next
			// link deletes them.
			cl.rel.reply(cloud.CodeOK, "")
			c.releaseDoneLocked(cl.rel)
		case callGet:
			cl.part.op.partFailedLocked(cl.part, now)
		case callResync:
			if ks := c.subs[cl.key]; ks != nil && ks.resyncReq == req {
				ks.resyncReq = 0
				c.resync[cl.key] = struct{}{}
			}
		}
	}
}

// reconcileLocked marks the rows and subscriptions whose place is not
// their owner's current link, after the replica set changed.
func (c *Client) reconcileLocked() {
	now := time.Now()
	for _, r := range c.rows {
		if r.releasing != nil {
			continue
		}
		o := c.ownerLocked(r.id.k)
		if o != nil && (r.placed == o.at || (r.sending != 0 && c.calls[r.sending] != nil && c.calls[r.sending].to == o.at)) {
			continue
		}
		r.placed = place{}
		c.unplaceLocked(r, now)
	}
	for k, ks := range c.subs {
		if o := c.ownerLocked(k); o == nil || ks.placed != o.at {
			c.delayResyncLocked(ks, now)
		}
	}
}

// delayResyncLocked schedules ks to be placed again after ResyncDelay, so
// that the rows their uploaders' servers are placing again at the same
// time are in its snapshot.
func (c *Client) delayResyncLocked(ks *ksub, now time.Time) {
	if _, ok := c.resync[ks.k]; !ok {
		ks.attempts = 0
		ks.retryAt = now.Add(c.cfg.ResyncDelay.D())
	}
	c.resync[ks.k] = struct{}{}
}

func (c *Client) unplaceLocked(r *crow, now time.Time) {
	if _, ok := c.unplaced[r.id]; !ok {
		r.attempts = 0
		r.retryAt = now
	}
	c.unplaced[r.id] = struct{}{}
}

// backoff delays a retry after an owner refused.
func (r *crow) backoff(now time.Time) {
	r.attempts++
	d := min(retryMin<<min(r.attempts, 10), retryMax)
	r.retryAt = now.Add(d)
}

// syncLoop places rows and subscriptions and retries Gets, every tick
// while there is work and whenever something changes.
func (c *Client) syncLoop() {
	defer c.wg.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.wake:
		case <-t.C:
		}
		c.mu.Lock()
		if !c.stopped {
			c.syncLocked(time.Now())
		}
		c.mu.Unlock()
	}
}

func (c *Client) syncLocked(now time.Time) {
	for id := range c.unplaced {
		r := c.rows[id]
		if r == nil || r.releasing != nil {
			delete(c.unplaced, id)
			continue
		}
		if r.retryAt.After(now) || r.sending != 0 {
			continue
		}
		o := c.ownerLocked(id.k)
		if o == nil || o.inflight >= maxSyncInflight {
			continue
		}
		c.sendPostLocked(r, o, true)
	}
	for _, rep := range c.replicas {
		if rep.session == nil {
			continue
		}
		for id := range rep.session {
			r := c.rows[id]
			if r == nil || r.releasing != nil || c.ring.owner(id.k) != rep.at.id {
				delete(rep.session, id)
			}
		}
		if len(rep.session) == 0 {
			rep.session = nil
			_ = rep.rs.SendFrame(protocol.KindCloudSrvSync, 0, (&cloudwire.SrvSync{Op: cloudwire.SyncEnd}).AppendTo(nil))
		}
	}
	c.syncSubsLocked(now)
	for op := range c.ops {
		op.retryLocked(now)
	}
}

// sendPostLocked posts r's current state to its owner o. A background
// re-post of a state an owner already confirmed is marked sync (an
// identical row is not notified again, and filters do not run twice).
func (c *Client) sendPostLocked(r *crow, o *replica, background bool) {
	req := c.nextReqLocked()
	cl := &call{kind: callPost, to: o.at, sync: background, row: r, version: r.version, data: r.data, addr: r.addr}
	m := cloudwire.SrvPost{Req: req, Sync: r.ackedVersion == r.version, Key: r.id.k, Uploader: r.id.up, Addr: r.addr, Data: r.data}
	delete(c.unplaced, r.id)
	delete(o.session, r.id)
	if err := o.rs.SendFrame(protocol.KindCloudSrvPost, 0, m.AppendTo(make([]byte, 0, 64+len(r.data)))); err != nil {
		r.backoff(time.Now())
		c.unplaced[r.id] = struct{}{}
		return
	}
	c.calls[req] = cl
	r.sending = req
	if background {
		o.inflight++
	}
}

// newWaiterLocked makes a waiter that fails with CloudTimeout after the
// operation timeout.
func (c *Client) newWaiterLocked(version uint64, done doneFunc) *waiter {
	w := &waiter{version: version, done: done}
	w.timer = time.AfterFunc(c.cfg.OpTimeout.D(), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.fireLocked(w, cloud.CodeTimeout, fmt.Sprintf("not confirmed within %s", c.cfg.OpTimeout.D()))
	})
	return w
}

func (c *Client) fireLocked(w *waiter, code cloud.Code, msg string) {
	if w.fired {
		return
	}
	w.fired = true
	w.timer.Stop()
	w.done(code, msg)
}

// resolveLocked answers r's waiters up to version.
func (c *Client) resolveLocked(r *crow, version uint64, code cloud.Code, msg string) {
	keep := r.waiters[:0]
	for _, w := range r.waiters {
		if w.version <= version {
			c.fireLocked(w, code, msg)
		} else if !w.fired {
			keep = append(keep, w)
		}
	}
	clear(r.waiters[len(keep):])
	r.waiters = keep
}

// post creates or overwrites up's row under k. done receives the outcome
// once the owner confirmed (or refused, or the timeout passed).
func (c *Client) post(up ref, addr string, k key, data []byte, done doneFunc) {
	code, msg := c.checkPost(up, addr, k, data)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case code != cloud.CodeOK:
	case c.stopped:
		code, msg = cloud.CodeShuttingDown, "server shutting down"
	case c.ring.empty() && c.gen > 0:
		// Every replica linked since Start is gone: fail at once. Before
		// the first one links (the system is starting), the row waits
		// for it like a row whose owner is unreachable.
		code, msg = cloud.CodeUnavailable, fmt.Sprintf("no replica of cloud group %q is linked", c.Group)
	}
	if code != cloud.CodeOK {
		done(code, msg)
		return
	}
	id := rowID{k, up}
	r := c.rows[id]
	u := c.uploaders[up]
	old := 0
	if r != nil {
		old = len(r.data)
	}
	if up.ID != 0 {
		used := 0
		if u != nil {
			used = u.bytes
		}
		if used-old+len(data) > c.cfg.MaxUploadBytesPerClient {
			done(cloud.CodeUploadLimit, fmt.Sprintf("rows would hold %d bytes, limit %d", used-old+len(data), c.cfg.MaxUploadBytesPerClient))
			return
		}
	}
	if u == nil {
		u = &uploader{keys: make(map[key]struct{})}
		c.uploaders[up] = u
	}
	if r == nil {
		r = &crow{id: id}
		c.rows[id] = r
		u.keys[k] = struct{}{}
	}
	u.bytes += len(data) - old
	r.data = append(make([]byte, 0, len(data)), data...)
	r.addr = addr
	r.version++
	r.waiters = append(r.waiters, c.newWaiterLocked(r.version, done))
	if o := c.ownerLocked(k); o != nil && r.releasing == nil {
		c.sendPostLocked(r, o, false)
	} else {
		c.unplaceLocked(r, time.Now())
	}
}

// checkPost runs the checks that need no lock: key, size, filters.
func (c *Client) checkPost(up ref, addr string, k key, data []byte) (cloud.Code, string) {
	if err := k.Validate(); err != nil {
		return cloud.CodeBadRequest, err.Error()
	}
	if len(data) > c.cfg.MaxRowBytes {
		return cloud.CodeRowTooLarge, fmt.Sprintf("row of %d bytes, limit %d", len(data), c.cfg.MaxRowBytes)
	}
	return filter(c.host, &plugins.CloudOp{Kind: plugins.CloudOpPost, Uploader: up, Addr: addr, Keys: []key{k}, Data: data})
}

// filter runs the query filters of h's plugins on op: CloudRejected with
// the first refusal, else CloudOK. Filters are plugin code: callers hold
// no lock of this package.
func filter(h plugins.Host, op *plugins.CloudOp) (cloud.Code, string) {
	if err := h.FilterCloud(op); err != nil {
		return cloud.CodeRejected, err.Error()
	}
	return cloud.CodeOK, ""
}

func (c *Client) onPostReplyLocked(req uint64, cl *call, code cloud.Code, msg string) {
	if cl.sync {
		if o := c.replicas[cl.to.id]; o != nil && o.at == cl.to {
			o.inflight--
		}
	}
	r := cl.row
	if c.rows[r.id] != r {
		return // deleted meanwhile; its waiters were answered
	}
	latest := r.sending == req
	if latest {
		r.sending = 0
	}
	now := time.Now()
	switch code {
	case cloud.CodeOK:
		if latest {
			r.placed = cl.to
			r.attempts = 0
			if o := c.ownerLocked(r.id.k); o == nil || o.at != cl.to {
				// The owner changed while the post was on its way.
				r.placed = place{}
				c.unplaceLocked(r, now)
			}
		}
		if cl.version > r.ackedVersion {
			r.acked, r.ackedAddr, r.ackedVersion = cl.data, cl.addr, cl.version
		}
		c.resolveLocked(r, cl.version, cloud.CodeOK, "")
	case cloud.CodeNotOwner, cloud.CodeUnavailable:
		if latest {
			r.placed = place{}
			c.unplaced[r.id] = struct{}{}
			r.backoff(now)
		}
	default:
		// Refused for good: this version fails, and the row returns to
		// its last confirmed state (or goes, if it never had one).
		for _, w := range r.waiters {
			if w.version == cl.version {
				c.fireLocked(w, code, msg)
			}
		}
		if r.version != cl.version {
			return
		}
		if r.ackedVersion == 0 {
			c.deleteRowLocked(r)
			return
		}
		u := c.uploaders[r.id.up]
		u.bytes += len(r.acked) - len(r.data)
		r.data, r.addr = r.acked, r.ackedAddr
		r.version++
		r.ackedVersion = r.version // the owner holds it already
		if latest {
			c.unplaceLocked(r, now)
		}
	}
}

// deleteRowLocked forgets r; its waiters are answered OK (the row existed
// and is gone).
func (c *Client) deleteRowLocked(r *crow) {
	delete(c.rows, r.id)
	delete(c.unplaced, r.id)
	if u := c.uploaders[r.id.up]; u != nil {
		u.bytes -= len(r.data)
		delete(u.keys, r.id.k)
		if len(u.keys) == 0 {
			delete(c.uploaders, r.id.up)
		}
	}
	c.resolveLocked(r, ^uint64(0), cloud.CodeOK, "")
}

// releaseOp is a Release waiting for the replicas that held the rows.
type releaseOp struct {
	pending  int
	code     cloud.Code
	msg      string
	versions map[*crow]uint64
	w        *waiter
	finished bool
}

func (op *releaseOp) reply(code cloud.Code, msg string) {
	op.pending--
	if code != cloud.CodeOK && op.code == cloud.CodeOK {
		op.code, op.msg = code, msg
	}
}

func (op *releaseOp) fail(code cloud.Code, msg string) {
	op.pending = 0
	if op.code == cloud.CodeOK {
		op.code, op.msg = code, msg
	}
}

// release deletes up's rows under keys at the replicas that hold them.
func (c *Client) release(up ref, addr string, keys []key, done doneFunc) {
	code, msg := c.checkKeys(keys)
	if code == cloud.CodeOK {
		code, msg = filter(c.host, &plugins.CloudOp{Kind: plugins.CloudOpRelease, Uploader: up, Addr: addr, Keys: keys})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if code == cloud.CodeOK && c.stopped {
		code, msg = cloud.CodeShuttingDown, "server shutting down"
	}
	if code != cloud.CodeOK {
		done(code, msg)
		return
	}
	op := &releaseOp{versions: make(map[*crow]uint64)}
	byPlace := make(map[place][]key)
	for _, k := range keys {
		r := c.rows[rowID{k, up}]
		if r == nil || r.releasing != nil {
			continue
		}
		var at []place
		if r.placed.gen != 0 {
			at = append(at, r.placed)
		}
		if cl := c.calls[r.sending]; cl != nil && cl.to != r.placed {
			at = append(at, cl.to)
		}
		if len(at) == 0 {
			c.deleteRowLocked(r) // placed nowhere yet
			continue
		}
		r.releasing = op
		op.versions[r] = r.version
		for _, p := range at {
			byPlace[p] = append(byPlace[p], k)
		}
	}
	op.w = c.newWaiterLocked(0, done)
	for p, ks := range byPlace {
		rep := c.replicas[p.id]
		if rep == nil || rep.at != p {
			continue // that link is gone: so are the rows there
		}
		req := c.nextReqLocked()
		m := cloudwire.SrvRelease{Req: req, Uploader: up, Addr: addr, Keys: ks}
		if rep.rs.SendFrame(protocol.KindCloudSrvRelease, 0, m.AppendTo(nil)) != nil {
			continue
		}
		c.calls[req] = &call{kind: callRelease, to: p, rel: op}
		op.pending++
	}
	c.releaseDoneLocked(op)
}

// releaseDoneLocked finishes op once no replica answer is pending: the
// rows go (unless posted again meanwhile) or, refused, stay.
func (c *Client) releaseDoneLocked(op *releaseOp) {
	if op.pending > 0 || op.finished {
		return
	}
	op.finished = true
	now := time.Now()
	for r, v := range op.versions {
		if r.releasing != op {
			continue
		}
		r.releasing = nil
		if c.rows[r.id] != r {
			continue
		}
		if op.code == cloud.CodeOK && r.version == v {
			c.deleteRowLocked(r)
			continue
		}
		// Posted again, or refused: make sure it is where it belongs.
		r.placed = place{}
		c.unplaceLocked(r, now)
	}
	c.fireLocked(op.w, op.code, op.msg)
}

// checkKeys validates the keys of an operation.
func (c *Client) checkKeys(keys []key) (cloud.Code, string) {
	if len(keys) == 0 {
		return cloud.CodeBadRequest, "no keys"
	}
	if len(keys) > c.cfg.MaxKeysPerQuery {
		return cloud.CodeTooManyKeys, fmt.Sprintf("%d keys, limit %d", len(keys), c.cfg.MaxKeysPerQuery)
	}
	for _, k := range keys {
		if err := k.Validate(); err != nil {
			return cloud.CodeBadRequest, err.Error()
		}
	}
	return cloud.CodeOK, ""
}

// dropUploader deletes every row of up (it disconnected) here and at every
// replica.
func (c *Client) dropUploader(up ref) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.uploaders[up]
	if u == nil {
		return
	}
	for k := range u.keys {
		if r := c.rows[rowID{k, up}]; r != nil {
			c.deleteRowLocked(r)
		}
	}
	delete(c.uploaders, up)
	drop := (&cloudwire.SrvDrop{Uploader: up}).AppendTo(nil)
	for _, rep := range c.replicas {
		_ = rep.rs.SendFrame(protocol.KindCloudSrvDrop, 0, drop)
	}
}

// ClientDisconnected implements plugins.ClientDisconnectedHandler: a game
// client's rows and subscriptions go with it.
func (c *Client) ClientDisconnected(pc plugins.Client, _ error) error {
	c.dropUploader(pc.Ref())
	c.mu.Lock()
	if sub := c.clientSub[pc.Ref().ID]; sub != nil {
		delete(c.clientSub, pc.Ref().ID)
		c.dropSubscriberLocked(sub)
	}
	c.mu.Unlock()
	return nil
}

// FrameKinds implements plugins.FrameHandler.
func (c *Client) FrameKinds() []protocol.Kind {
	return []protocol.Kind{
		protocol.KindCloudPost, protocol.KindCloudRelease, protocol.KindCloudGet, protocol.KindCloudUnsubscribe,
		protocol.KindCloudSrvReply, protocol.KindCloudSrvResult, protocol.KindCloudSrvNotify, protocol.KindCloudSrvMoved,
	}
}

// ServerFrame implements plugins.FrameHandler: answers and notifications
// from replicas.
func (c *Client) ServerFrame(rs plugins.RemoteServer, f protocol.Frame) error {
	if !c.isCloud(rs) {
		return fmt.Errorf("cloud memory: %s from %s, which is not a replica of %q", f.Kind, rs.ID(), c.Group)
	}
	switch f.Kind {
	case protocol.KindCloudSrvReply:
		var m cloudwire.SrvReply
		if err := m.Decode(f.Payload); err != nil {
			return err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		cl := c.takeCallLocked(m.Req, rs)
		if cl == nil {
			return nil
		}
		switch cl.kind {
		case callPost:
			c.onPostReplyLocked(m.Req, cl, m.Code, m.Message)
		case callRelease:
			cl.rel.reply(m.Code, m.Message)
			c.releaseDoneLocked(cl.rel)
		}
	case protocol.KindCloudSrvResult:
		var m cloudwire.SrvResult
		if err := m.Decode(f.Payload); err != nil {
			return err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		cl := c.takeCallLocked(m.Req, rs)
		if cl == nil {
			return nil
		}
		switch cl.kind {
		case callGet:
			cl.part.op.partResultLocked(cl.part, &m)
		case callResync:
			c.onResyncLocked(m.Req, cl, &m)
		}
	case protocol.KindCloudSrvNotify:
		var m cloudwire.Notice
		if err := m.Decode(f.Payload); err != nil {
			return err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.onNoticeLocked(rs, f.Payload, &m)
	case protocol.KindCloudSrvMoved:
		var m cloudwire.SrvMoved
		if err := m.Decode(f.Payload); err != nil {
			return err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.onMovedLocked(rs, m.Keys)
	default:
		return fmt.Errorf("cloud memory: unexpected %s from a replica", f.Kind)
	}
	return nil
}

// takeCallLocked removes and returns the pending call req, if it went to
// rs; an answer from any other replica (or a late one) is ignored.
func (c *Client) takeCallLocked(req uint64, rs plugins.RemoteServer) *call {
	cl := c.calls[req]
	if cl == nil || cl.to.id != rs.ID() {
		return nil
	}
	delete(c.calls, req)
	return cl
}

// onMovedLocked: the replica dropped our rows and subscriptions under
// keys (it no longer owns them); place them again.
func (c *Client) onMovedLocked(rs plugins.RemoteServer, keys []key) {
	rep := c.replicas[rs.ID()]
	if rep == nil {
		return
	}
	now := time.Now()
	moved := make(map[key]struct{}, len(keys))
	for _, k := range keys {
		moved[k] = struct{}{}
		if ks := c.subs[k]; ks != nil && ks.placed == rep.at {
			ks.placed = place{}
			c.delayResyncLocked(ks, now)
		}
	}
	for id, r := range c.rows {
		if _, ok := moved[id.k]; ok && r.placed == rep.at {
			r.placed = place{}
			c.unplaceLocked(r, now)
		}
	}
	c.kick()
}
