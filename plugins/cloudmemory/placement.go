package cloudmemory

import (
	"time"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
	"github.com/cloudrift/cloudrift/rendezvous"
)

// Placement: which replica owns a key, the replica links coming and
// going, and the sync loop that places (and re-places) rows with their
// owners and retries what an owner refused.

// ownerLocked returns the replica owning k in this server's view, or nil.
func (c *Caller) ownerLocked(k key) *replica {
	return c.replicas[ownerOf(c.ring, k)]
}

func (c *Caller) isCloud(rs plugins.RemoteServer) bool {
	return rs.Group() == c.group && rs.Direction() == plugins.Upstream
}

// ServerConnected implements plugins.ServerConnectedHandler: a replica
// link is up. A sync session starts: everything this server placed there
// before is posted again, then the replica deletes what was not.
func (c *Caller) ServerConnected(rs plugins.RemoteServer) error {
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
	_ = c.host.SendFrame(rs, protocol.KindCloudSrvSync, 0, (&cloudwire.SrvSync{Op: cloudwire.SyncStart}).AppendTo(nil))
	for id := range c.rows {
		if ownerOf(c.ring, id.k) == rs.ID() {
			rep.session[id] = struct{}{}
		}
	}
	c.reconcileLocked()
	c.log.Debug().Str("replica", rs.ID()).Strs("ring", c.ring.IDs()).Int("rows", len(rep.session)).Msg("cloud replica linked")
	c.kick()
	return nil
}

func (c *Caller) ringLocked() rendezvous.Ring {
	ids := make([]string, 0, len(c.replicas))
	for id := range c.replicas {
		ids = append(ids, id)
	}
	return rendezvous.NewRing(ids)
}

// ServerDisconnected implements plugins.ServerDisconnectedHandler.
func (c *Caller) ServerDisconnected(rs plugins.RemoteServer, _ error) error {
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
	c.log.Debug().Str("replica", rs.ID()).Strs("ring", c.ring.IDs()).Msg("cloud replica unlinked")
	c.kick()
	return nil
}

// ServerLeft implements plugins.ServerLeftHandler.
func (c *Caller) ServerLeft(rs plugins.RemoteServer) error { return c.ServerDisconnected(rs, nil) }

// dropReplicaLocked ends every request in flight to rep: they are retried
// with the keys' current owners.
func (c *Caller) dropReplicaLocked(rep *replica) {
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
func (c *Caller) reconcileLocked() {
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
func (c *Caller) delayResyncLocked(ks *ksub, now time.Time) {
	if _, ok := c.resync[ks.k]; !ok {
		ks.attempts = 0
		ks.retryAt = now.Add(c.cfg.ResyncDelay.Duration())
	}
	c.resync[ks.k] = struct{}{}
}

func (c *Caller) unplaceLocked(r *placedRow, now time.Time) {
	if _, ok := c.unplaced[r.id]; !ok {
		r.attempts = 0
		r.retryAt = now
	}
	c.unplaced[r.id] = struct{}{}
}

// backoff delays a retry after an owner refused.
func (r *placedRow) backoff(now time.Time) {
	r.attempts++
	r.retryAt = now.Add(retryDelay(r.attempts))
}

// syncLoop places rows and subscriptions and retries Gets, every tick
// while there is work and whenever something changes.
func (c *Caller) syncLoop() {
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

func (c *Caller) syncLocked(now time.Time) {
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
			if r == nil || r.releasing != nil || ownerOf(c.ring, id.k) != rep.at.id {
				delete(rep.session, id)
			}
		}
		if len(rep.session) == 0 {
			rep.session = nil
			_ = c.host.SendFrame(rep.rs, protocol.KindCloudSrvSync, 0, (&cloudwire.SrvSync{Op: cloudwire.SyncEnd}).AppendTo(nil))
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
func (c *Caller) sendPostLocked(r *placedRow, o *replica, background bool) {
	req := c.nextReqLocked()
	cl := &call{kind: callPost, to: o.at, sync: background, row: r, version: r.version, data: r.data, addr: r.addr}
	m := cloudwire.SrvPost{Req: req, Sync: r.ackedVersion == r.version, Key: r.id.k, Uploader: r.id.up, Addr: r.addr, Data: r.data}
	delete(c.unplaced, r.id)
	delete(o.session, r.id)
	if err := c.host.SendFrame(o.rs, protocol.KindCloudSrvPost, 0, m.AppendTo(make([]byte, 0, 64+len(r.data)))); err != nil {
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
