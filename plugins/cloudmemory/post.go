package cloudmemory

import (
	"fmt"
	"time"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/plugins/extension"
)

// Posts: the rows uploaded through this server, the operations waiting
// for their confirmation, and the answers of their owners.

// rowID names a row: its key and uploader.
type rowID struct {
	k  key
	up ref
}

// placedRow is a row uploaded through this server.
type placedRow struct {
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

// doneFunc receives an operation's outcome; it runs with Caller.mu held.
type doneFunc func(code cloud.Code, msg string)

// waiter is an operation waiting for confirmation.
type waiter struct {
	version uint64
	done    doneFunc
	c       *Caller
	expiry  uint64 // its ID in Caller.opExp
	fired   bool
}

// newWaiterLocked makes a waiter that fails with CloudTimeout after the
// operation timeout.
func (c *Caller) newWaiterLocked(version uint64, done doneFunc) *waiter {
	w := &waiter{version: version, done: done, c: c}
	w.expiry = c.opExp.addLocked(w, time.Now())
	return w
}

// expireLocked implements expirer.
func (w *waiter) expireLocked() {
	w.c.fireLocked(w, cloud.CodeTimeout, fmt.Sprintf("not confirmed within %s", w.c.cfg.OpTimeout.Duration()))
}

func (c *Caller) fireLocked(w *waiter, code cloud.Code, msg string) {
	if w.fired {
		return
	}
	w.fired = true
	c.opExp.doneLocked(w.expiry)
	w.done(code, msg)
}

// resolveLocked answers r's waiters up to version.
func (c *Caller) resolveLocked(r *placedRow, version uint64, code cloud.Code, msg string) {
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
func (c *Caller) post(up ref, addr string, k key, data []byte, done doneFunc) {
	code, msg := c.checkPost(up, addr, k, data)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case code != cloud.CodeOK:
	case c.stopped:
		code, msg = cloud.CodeShuttingDown, "server shutting down"
	case c.ring.Len() == 0 && c.joined:
		// Every replica that joined since Start left: fail at once.
		// Before the first one joins (the system is starting), the row
		// waits for it like a row whose owner is unreachable.
		code, msg = cloud.CodeUnavailable, fmt.Sprintf("no replica of cloud group %q is linked", c.group)
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
		r = &placedRow{id: id}
		c.rows[id] = r
		u.keys[k] = struct{}{}
	}
	u.bytes += len(data) - old
	r.data = append(make([]byte, 0, len(data)), data...)
	r.addr = addr
	r.version++
	r.waiters = append(r.waiters, c.newWaiterLocked(r.version, done))
	if o := c.ownerLocked(k); o != nil && o.linked && r.releasing == nil {
		c.sendPostLocked(r, o, false)
	} else {
		c.unplaceLocked(r, time.Now())
	}
}

// checkPost runs the checks that need no lock: key, size, filters.
func (c *Caller) checkPost(up ref, addr string, k key, data []byte) (cloud.Code, string) {
	if err := k.Validate(); err != nil {
		return cloud.CodeBadRequest, err.Error()
	}
	if len(data) > c.cfg.MaxRowBytes {
		return cloud.CodeRowTooLarge, fmt.Sprintf("row of %d bytes, limit %d", len(data), c.cfg.MaxRowBytes)
	}
	if !c.filters {
		return cloud.CodeOK, ""
	}
	return filter(c.host, &plugins.CloudOp{Kind: plugins.CloudOpPost, Uploader: up, Addr: addr, Keys: []key{k}, Data: data})
}

// filter runs the query filters of h's plugins on op: CloudRejected with
// the first refusal, else CloudOK. Filters are plugin code: callers hold
// no lock of this package.
func filter(h extension.Host, op *plugins.CloudOp) (cloud.Code, string) {
	if err := h.FilterCloud(op); err != nil {
		return cloud.CodeRejected, err.Error()
	}
	return cloud.CodeOK, ""
}

func (c *Caller) onPostReplyLocked(req uint64, cl *call, code cloud.Code, msg string) {
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
func (c *Caller) deleteRowLocked(r *placedRow) {
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
