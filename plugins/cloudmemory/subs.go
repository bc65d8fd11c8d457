package cloudmemory

import (
	"fmt"
	"time"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
)

// Two-level subscriptions, the server's level. Each key this server's
// subscribers (game clients and plugin sessions) subscribe to has a ksub:
// one subscription at the key's owner for the union of their uploader
// filters, and an entry per subscriber with its own filter and state. The
// owner's notifications for the key arrive once and are fanned out to the
// entries whose filter matches.
//
// An entry's snapshot and its notifications must line up exactly. The
// owner sends a Get's result on the same link as its notifications, after
// those that preceded the snapshot, so an entry ignores notifications
// until its snapshot arrives (pending), buffers them while the Get that
// carries the snapshot waits for other replicas (held), and delivers them
// afterwards (active). When the subscription has to be placed again
// (another owner, a new link, dropped notifications), its entries wait for
// a fresh snapshot, which they receive as a Resync (resync state).

type entryState uint8

const (
	entryPending entryState = iota + 1 // waiting for its Get's snapshot
	entryHeld                          // snapshot in; its Get not answered yet
	entryActive                        // receiving notifications
	entryResync                        // waiting for a resync snapshot
)

// subscriber is a game client or a plugin session.
type subscriber struct {
	client  plugins.Client // nil for a session
	sess    *session
	limited bool // the subscriptions limit applies (game clients)
	entries map[key]*subEntry
}

type subEntry struct {
	sub   *subscriber
	k     key
	all   bool
	ups   map[ref]struct{}
	state entryState
	op    *getOp // the Get that brings its snapshot (pending, held)
	// stale: the snapshot of a held entry came from a replica that no
	// longer holds the subscription; resync once the Get is answered.
	stale bool
}

// sessionOf returns the plugin session of a subscriber (nil: a game
// client, or no subscriber).
func (s *subscriber) sessionOf() *session {
	if s == nil {
		return nil
	}
	return s.sess
}

func (e *subEntry) matches(up ref) bool {
	if e.all {
		return true
	}
	_, ok := e.ups[up]
	return ok
}

func (e *subEntry) setFilter(ups []ref) {
	e.all = len(ups) == 0
	e.ups = nil
	if !e.all {
		e.ups = make(map[ref]struct{}, len(ups))
		for _, u := range ups {
			e.ups[u] = struct{}{}
		}
	}
}

// ksub is this server's subscription to one key.
type ksub struct {
	k         key
	entries   map[*subscriber]*subEntry
	placed    place  // where the server-level subscription lives
	resyncReq uint64 // resync read in flight
	retryAt   time.Time
	attempts  int
}

// union returns the server-level filter: every uploader, or the listed
// ones, or nothing when no entry is left.
func (ks *ksub) union() (cloudwire.SubMode, []ref) {
	if len(ks.entries) == 0 {
		return cloudwire.SubRemove, nil
	}
	set := make(map[ref]struct{})
	for _, e := range ks.entries {
		if e.all {
			return cloudwire.SubAll, nil
		}
		for u := range e.ups {
			set[u] = struct{}{}
		}
	}
	ups := make([]ref, 0, len(set))
	for u := range set {
		ups = append(ups, u)
	}
	return cloudwire.SubList, sortedRefs(ups)
}

// sendSubLocked tells the key's placed owner the current union, and
// forgets the ksub when no entry is left.
func (c *Caller) sendSubLocked(ks *ksub) {
	mode, ups := ks.union()
	if rep := c.replicas[ks.placed.id]; rep != nil && rep.at == ks.placed {
		m := cloudwire.SrvSub{Mode: mode, Keys: []key{ks.k}, Uploaders: ups}
		_ = c.host.SendFrame(rep.rs, protocol.KindCloudSrvSub, 0, m.AppendTo(nil))
	}
	if mode == cloudwire.SubRemove {
		delete(c.subs, ks.k)
		delete(c.resync, ks.k)
	}
}

// placeSubLocked makes rep hold the subscription. Moving it from another
// place means the entries' state may be behind: they resync.
func (c *Caller) placeSubLocked(ks *ksub, rep *replica) {
	moved := ks.placed != rep.at
	ks.placed = rep.at
	c.sendSubLocked(ks)
	if !moved {
		return
	}
	if ks.resyncReq != 0 {
		delete(c.calls, ks.resyncReq)
		ks.resyncReq = 0
	}
	for _, e := range ks.entries {
		switch e.state {
		case entryActive:
			e.state = entryResync
		case entryHeld:
			e.stale = true
		}
	}
}

// needsResync reports whether an entry waits for a resync snapshot.
func (ks *ksub) needsResync() bool {
	for _, e := range ks.entries {
		if e.state == entryResync {
			return true
		}
	}
	return false
}

// syncSubsLocked places the subscriptions marked for it and starts the
// resync reads their entries wait for.
func (c *Caller) syncSubsLocked(now time.Time) {
	for k := range c.resync {
		ks := c.subs[k]
		if ks == nil {
			delete(c.resync, k)
			continue
		}
		if ks.retryAt.After(now) {
			continue
		}
		rep := c.ownerLocked(k)
		if rep == nil || !rep.linked {
			continue
		}
		c.placeSubLocked(ks, rep)
		if ks.placed != rep.at { // the ksub went away
			delete(c.resync, k)
			continue
		}
		if ks.needsResync() && ks.resyncReq == 0 {
			c.sendResyncLocked(ks, rep)
		}
		delete(c.resync, k)
	}
}

// sendResyncLocked reads the key's rows matching the union filter, for the
// entries that wait for a snapshot.
func (c *Caller) sendResyncLocked(ks *ksub, rep *replica) {
	req := c.nextReqLocked()
	_, ups := ks.union()
	m := cloudwire.SrvGet{Req: req, Sync: true, Asker: c.self, Keys: []key{ks.k}, Uploaders: ups, MaxBytes: uint32(c.budget)}
	if c.host.SendFrame(rep.rs, protocol.KindCloudSrvGet, 0, m.AppendTo(nil)) != nil {
		c.resync[ks.k] = struct{}{}
		return
	}
	c.calls[req] = &call{kind: callResync, to: rep.at, key: ks.k}
	ks.resyncReq = req
}

func (c *Caller) onResyncLocked(req uint64, cl *call, m *cloudwire.SrvResult) {
	ks := c.subs[cl.key]
	if ks == nil || ks.resyncReq != req {
		return
	}
	ks.resyncReq = 0
	if m.Code != cloud.CodeOK || len(m.Refused) > 0 {
		// Not the owner, or the key's rows are still arriving there.
		ks.attempts++
		ks.retryAt = time.Now().Add(retryDelay(ks.attempts))
		c.resync[ks.k] = struct{}{}
		return
	}
	ks.attempts = 0
	if ks.placed != cl.to {
		c.resync[ks.k] = struct{}{} // moved again meanwhile
		return
	}
	rows := copyRows(m.Rows)
	for _, e := range ks.entries {
		if e.state == entryResync {
			c.deliverResyncLocked(e, ks.k, rows, m.Cut)
			e.state = entryActive
		}
	}
}

// copyRows copies rows whose Data alias a frame into one buffer.
func copyRows(rows []cloud.Row) []cloud.Row {
	n := 0
	for i := range rows {
		n += len(rows[i].Data)
	}
	buf := make([]byte, 0, n)
	out := make([]cloud.Row, len(rows))
	for i, r := range rows {
		start := len(buf)
		buf = append(buf, r.Data...)
		r.Data = buf[start:len(buf):len(buf)]
		out[i] = r
	}
	return out
}

// deliverResyncLocked sends e's subscriber the rows of k matching its
// filter, replacing whatever it holds for k.
func (c *Caller) deliverResyncLocked(e *subEntry, k key, rows []cloud.Row, truncated bool) {
	mine := rows
	if !e.all {
		mine = nil
		for _, r := range rows {
			if e.matches(r.Uploader) {
				mine = append(mine, r)
			}
		}
	}
	if pc := e.sub.client; pc != nil {
		m := cloudwire.Resync{Truncated: truncated, Key: k, Rows: mine}
		_ = c.host.SendClientFrame(pc, protocol.KindCloudResync, 0, m.AppendTo(nil))
		return
	}
	e.sub.sess.pushLocked(c, cloud.Notification{Type: cloud.NotifyResync, Key: k, Rows: mine, Truncated: truncated})
}

// heldNote is a notification kept for a held entry until its Get is
// answered.
type heldNote struct {
	e       *subEntry
	payload []byte // the encoded notice, for a client
	n       cloud.Notification
}

// onNoticeLocked fans a replica's notification out to the entries that
// want it.
func (c *Caller) onNoticeLocked(rs plugins.RemoteServer, payload []byte, m *cloudwire.Notice) {
	ks := c.subs[m.Row.Key]
	rep := c.replicas[rs.ID()]
	if ks == nil || rep == nil || ks.placed != rep.at {
		return // not (or no longer) subscribed there
	}
	var refs []ref // sized once: a key may have thousands of subscribers
	if len(ks.entries) > 0 {
		refs = make([]ref, 0, len(ks.entries))
	}
	var note *cloud.Notification
	getNote := func() cloud.Notification {
		if note == nil {
			n := noteOf(m)
			note = &n
		}
		return *note
	}
	for _, e := range ks.entries {
		if !e.matches(m.Row.Uploader) {
			continue
		}
		switch e.state {
		case entryActive:
			if e.sub.client != nil {
				refs = append(refs, e.sub.client.Ref())
			} else {
				e.sub.sess.pushLocked(c, getNote())
			}
		case entryHeld:
			h := heldNote{e: e}
			if e.sub.client != nil {
				h.payload = append([]byte(nil), payload...)
			} else {
				h.n = getNote()
			}
			e.op.held = append(e.op.held, h)
		}
	}
	if len(refs) > 0 {
		// Clients that are gone are dropped by their disconnect hook.
		_ = c.host.SendFrameToClients(refs, protocol.KindCloudNotify, 0, payload)
	}
}

// noteOf converts a notice; the row's data is copied.
func noteOf(m *cloudwire.Notice) cloud.Notification {
	row := m.Row
	row.Data = append([]byte(nil), row.Data...)
	t := cloud.NotifyUpdated
	if m.Type == cloudwire.Deleted {
		t = cloud.NotifyDeleted
	}
	return cloud.Notification{Type: t, Key: row.Key, Row: row, Created: m.Created}
}

// deliverHeldLocked delivers a notification that waited for its entry's
// Get to be answered.
func (c *Caller) deliverHeldLocked(h heldNote) {
	if pc := h.e.sub.client; pc != nil {
		_ = c.host.SendClientFrame(pc, protocol.KindCloudNotify, 0, h.payload)
		return
	}
	h.e.sub.sess.pushLocked(c, h.n)
}

// removeEntryLocked drops e and updates the key's union at its owner.
func (c *Caller) removeEntryLocked(ks *ksub, e *subEntry) {
	delete(ks.entries, e.sub)
	delete(e.sub.entries, ks.k)
	c.sendSubLocked(ks)
}

// dropSubscriberLocked removes every entry of sub.
func (c *Caller) dropSubscriberLocked(sub *subscriber) {
	for k, e := range sub.entries {
		if ks := c.subs[k]; ks != nil {
			c.removeEntryLocked(ks, e)
		}
	}
}

// resyncSubscriberLocked makes every entry of sub wait for a resync
// snapshot (its notifications had to be dropped).
func (c *Caller) resyncSubscriberLocked(sub *subscriber) {
	for k, e := range sub.entries {
		switch e.state {
		case entryActive:
			e.state = entryResync
			c.resync[k] = struct{}{}
		case entryHeld:
			e.stale = true
		}
	}
	c.kick()
}

// unsubscribe removes sub's subscription to keys, or the named uploaders
// from it. Nothing changes unless every key can be unsubscribed.
func (c *Caller) unsubscribe(sub func() *subscriber, asker ref, addr string, keys []key, ups []ref, done doneFunc) {
	code, msg := c.checkKeys(keys)
	if code == cloud.CodeOK && c.filters {
		code, msg = filter(c.host, &plugins.CloudOp{Kind: plugins.CloudOpUnsubscribe, Uploader: asker, Addr: addr, Keys: keys, Uploaders: ups})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if code != cloud.CodeOK {
		done(code, msg)
		return
	}
	s := sub()
	for _, k := range keys {
		e := s.entries[k]
		switch {
		case e == nil:
			done(cloud.CodeNotSubscribed, fmt.Sprintf("not subscribed to %s", k))
			return
		case len(ups) > 0 && e.all:
			done(cloud.CodeSubscribedToAll, fmt.Sprintf("the subscription to %s is to every uploader; unsubscribe the key instead", k))
			return
		}
		for _, u := range ups {
			if _, ok := e.ups[u]; !ok {
				done(cloud.CodeNotSubscribed, fmt.Sprintf("uploader %s is not in the subscription to %s", u, k))
				return
			}
		}
	}
	for _, k := range keys {
		e := s.entries[k]
		if e == nil {
			continue // a key listed twice
		}
		ks := c.subs[k]
		for _, u := range ups {
			delete(e.ups, u)
		}
		if len(ups) == 0 || len(e.ups) == 0 {
			c.removeEntryLocked(ks, e)
		} else {
			c.sendSubLocked(ks)
		}
	}
	done(cloud.CodeOK, "")
}
