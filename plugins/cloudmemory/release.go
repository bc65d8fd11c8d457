package cloudmemory

import (
	"fmt"
	"time"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
)

// Releases: deleting an uploader's rows under some keys, or all of them
// when it disconnects.

// releaseOp is a Release waiting for the replicas that held the rows.
type releaseOp struct {
	pending  int
	code     cloud.Code
	msg      string
	versions map[*placedRow]uint64
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
func (c *Caller) release(up ref, addr string, keys []key, done doneFunc) {
	code, msg := c.checkKeys(keys)
	if code == cloud.CodeOK && c.filters {
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
	op := &releaseOp{versions: make(map[*placedRow]uint64)}
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
		if c.host.SendFrame(rep.rs, protocol.KindCloudSrvRelease, 0, m.AppendTo(nil)) != nil {
			continue
		}
		c.calls[req] = &call{kind: callRelease, to: p, rel: op}
		op.pending++
	}
	c.releaseDoneLocked(op)
}

// releaseDoneLocked finishes op once no replica answer is pending: the
// rows go (unless posted again meanwhile) or, refused, stay.
func (c *Caller) releaseDoneLocked(op *releaseOp) {
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
func (c *Caller) checkKeys(keys []key) (cloud.Code, string) {
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
func (c *Caller) dropUploader(up ref) {
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
		if rep.linked {
			// An unlinked replica deletes them with the sync session
			// of its next link.
			_ = c.host.SendFrame(rep.rs, protocol.KindCloudSrvDrop, 0, drop)
		}
	}
}

// ClientDisconnected implements plugins.ClientDisconnectedHandler: a game
// client's rows and subscriptions go with it.
func (c *Caller) ClientDisconnected(pc plugins.Client, _ error) error {
	c.dropUploader(pc.Ref())
	c.mu.Lock()
	if sub := c.clientSub[pc.Ref().ID]; sub != nil {
		delete(c.clientSub, pc.Ref().ID)
		c.dropSubscriberLocked(sub)
	}
	c.mu.Unlock()
	return nil
}
