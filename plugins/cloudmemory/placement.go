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

// The replica set is the cloud group's members: a replica counts from
// ServerJoined to ServerLeft, whether its link is up or not, so that this
// server and the replicas (which follow the registry) hash keys over the
// same set. A member whose link is down keeps its keys: rows for them wait
// unplaced, and reads of them are retried until their Get times out
// (partial). The runtime debounces a member's leave, so a blip of the
// registry or of a link moves nothing.

// memberLocked returns rs's replica entry, replacing an older
// incarnation's, and whether it made the entry; the ring follows.
func (c *Caller) memberLocked(rs plugins.RemoteServer) (rep *replica, added bool) {
	rep = c.replicas[rs.ID()]
	if rep != nil && rep.rs.Incarnation() == rs.Incarnation() {
		return rep, false
	}
	if rep != nil {
		c.dropReplicaLocked(rep)
	}
	rep = &replica{rs: rs}
	c.replicas[rs.ID()] = rep
	c.joined = true
	c.setRingLocked()
	return rep, true
}

// ServerJoined implements plugins.ServerJoinedHandler: a replica is a
// member; the keys it wins are placed with it once its link is up.
func (c *Caller) ServerJoined(rs plugins.RemoteServer) error {
	if !c.isCloud(rs) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	if _, added := c.memberLocked(rs); !added {
		return nil
	}
	c.reconcileLocked()
	c.log.Debug().Str("replica", rs.ID()).Strs("ring", c.ring.IDs()).Msg("cloud replica joined")
	c.kick()
	return nil
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
	rep, _ := c.memberLocked(rs)
	if rep.linked {
		c.dropReplicaLocked(rep)
	}
	c.gen++
	rep.rs, rep.linked, rep.confirmed = rs, true, 0
	rep.at = place{id: rs.ID(), gen: c.gen}
	rep.session = make(map[rowID]struct{})
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

// setRingLocked hashes keys over the members from now on.
func (c *Caller) setRingLocked() {
	ids := make([]string, 0, len(c.replicas))
	for id := range c.replicas {
		ids = append(ids, id)
	}
	c.ring = rendezvous.NewRing(ids)
	c.digest = cloudwire.RingDigest(ids)
}

// ServerDisconnected implements plugins.ServerDisconnectedHandler: the
// replica stays a member (it keeps this server's rows for its grace);
// what was in flight there is retried once it is back, or with the keys'
// next owner.
func (c *Caller) ServerDisconnected(rs plugins.RemoteServer, _ error) error {
	if !c.isCloud(rs) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rep := c.replicas[rs.ID()]
	if rep == nil || !rep.linked || rep.rs != rs {
		return nil
	}
	rep.linked, rep.session = false, nil
	c.dropReplicaLocked(rep)
	c.log.Debug().Str("replica", rs.ID()).Msg("cloud replica unlinked")
	c.kick()
	return nil
}

// ServerLeft implements plugins.ServerLeftHandler: the replica is no
// longer a member; its keys move to the others.
func (c *Caller) ServerLeft(rs plugins.RemoteServer) error {
	if !c.isCloud(rs) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rep := c.replicas[rs.ID()]
	if rep == nil || rep.rs.Incarnation() != rs.Incarnation() {
		return nil
	}
	delete(c.replicas, rs.ID())
	c.setRingLocked()
	c.dropReplicaLocked(rep)
	c.reconcileLocked()
	c.log.Debug().Str("replica", rs.ID()).Strs("ring", c.ring.IDs()).Msg("cloud replica left")
	c.kick()
	return nil
}

// dropReplicaLocked ends every request in flight to rep: they are retried
// with the keys' current owners.
func (c *Caller) dropReplicaLocked(rep *replica) {
	if rep.at.gen == 0 {
		return // never linked: nothing went there
	}
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
			cl.part.op.partFailedLocked(&cl.part, now)
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
		// A row placed at its owner's latest link stays there, even while
		// that link is down: the next link's sync session re-places it.
		if o != nil && o.at.gen != 0 && (r.placed == o.at || (r.sending != 0 && c.calls[r.sending] != nil && c.calls[r.sending].to == o.at)) {
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
		if o == nil || !o.linked || o.inflight >= maxSyncInflight {
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
	c.confirmLocked()
	c.syncSubsLocked(now)
	for op := range c.ops {
		op.retryLocked(now)
	}
}

// confirmLocked tells each linked replica, once, that every row this
// server holds for its keys under the current ring is placed there
// (SyncRing): a replica that took keys over serves them once every server
// did. It is asked again when the ring or the link changes, or the
// replica asks (SrvMoved).
func (c *Caller) confirmLocked() {
	var due []*replica
	for _, rep := range c.replicas {
		if rep.linked && rep.session == nil && rep.confirmed != c.digest {
			due = append(due, rep)
		}
	}
	if len(due) == 0 {
		return
	}
	pending := make(map[string]bool)
	for id, r := range c.rows {
		if r.releasing != nil {
			continue
		}
		o := ownerOf(c.ring, id.k)
		if rep := c.replicas[o]; rep == nil || r.placed != rep.at {
			pending[o] = true
		}
	}
	ring := (&cloudwire.SrvSync{Op: cloudwire.SyncRing, Ring: c.digest}).AppendTo(nil)
	for _, rep := range due {
		if pending[rep.at.id] {
			continue
		}
		if c.host.SendFrame(rep.rs, protocol.KindCloudSrvSync, 0, ring) == nil {
			rep.confirmed = c.digest
		}
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
	buf := c.bufs.get()
	*buf = m.AppendTo(*buf)
	err := c.host.SendFrame(o.rs, protocol.KindCloudSrvPost, 0, *buf)
	c.bufs.put(buf)
	if err != nil {
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
