package cloudmemory

import (
	"fmt"
	"slices"
	"time"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
)

// A Get across replicas. The keys are grouped by owner and each group is
// read from its owner (a part). Results are merged in query key order; the
// owner orders each key's rows by uploader.
//
// Without an offset one round is enough: each part returns its first
// Limit rows (its own positions never come after the global ones) and
// MaxBytesPerDownload of them at most; the merge takes, key by key, the
// rows that fall in the global window, and stops (truncated) where a part
// was cut. With an offset, a first round counts the rows of every key, so
// that the second can ask each owner for exactly its share of the window:
// the global window restricted to one owner's keys is one contiguous run
// of that owner's own ordering.
//
// Keys their owner refuses ("not owner", or "unavailable": it took them
// over and their rows are still arriving), keys whose owner is not
// linked, and the keys of a part whose link goes down are planned again
// with the current owners after a backoff; keys not answered within
// GetTimeout are missing (partial).

type getOp struct {
	c         *Caller
	keys      []key // distinct, in query order
	ups       []ref
	offset    uint32
	limit     uint32
	subscribe bool
	sub       *subscriber
	asker     ref
	addr      string
	phase     int // 1: counting (offset > 0 only), 2: reading
	counts1   map[key]uint32
	res       []keyRes         // by position in keys
	pos       map[key]int      // positions in keys, made for a long query
	unplanned map[key]struct{} // made by the first unplan
	parts     []partReq        // in flight: a few, one per owner
	parts1    [1]partReq       // backs parts for a Get of one owner
	retryAt   time.Time
	attempts  int
	expiry    uint64 // its ID in Caller.getExp
	held      []heldNote
	prev      map[key]*subEntry // entries this Get re-subscribes, as they were
	done      func(*getResult)
	finished  bool
}

type getPart struct {
	op   *getOp
	keys []key
	to   place
}

// partReq is a part in flight and its request.
type partReq struct {
	part *getPart
	req  uint64
}

// keyRes is a key's answer, once got.
type keyRes struct {
	got   bool
	count uint32
	rows  []cloud.Row
	cut   bool
}

// resOf returns the answer slot of k, one of op's keys. A query names few
// keys: a short one is searched, a long one indexed once.
func (op *getOp) resOf(k key) *keyRes {
	if len(op.keys) <= 16 {
		return &op.res[slices.Index(op.keys, k)]
	}
	if op.pos == nil {
		op.pos = make(map[key]int, len(op.keys))
		for i, k := range op.keys {
			op.pos[k] = i
		}
	}
	return &op.res[op.pos[k]]
}

// getResult is a Get's outcome.
type getResult struct {
	code      cloud.Code
	msg       string
	rows      []cloud.Row
	total     uint32
	truncated bool
	partial   bool
	missing   []key
}

func (r *getResult) public() *cloud.Result {
	return &cloud.Result{Rows: r.rows, Total: int(r.total), Truncated: r.truncated, Partial: r.partial, Missing: r.missing}
}

// get runs a Get for asker. sub returns the subscriber for a subscribing
// Get (called with Caller.mu held). done receives the result; the data of
// its rows may be a frame's, valid only until done returns.
func (c *Caller) get(sub func() *subscriber, asker ref, addr string, q cloud.Query, done func(*getResult)) {
	fail := func(code cloud.Code, msg string) { done(&getResult{code: code, msg: msg}) }
	code, msg := c.checkKeys(q.Keys)
	if code == cloud.CodeOK && len(q.Uploaders) > cloud.MaxKeys {
		code, msg = cloud.CodeBadRequest, fmt.Sprintf("%d uploaders, limit %d", len(q.Uploaders), cloud.MaxKeys)
	}
	if code == cloud.CodeOK && c.filters {
		code, msg = filter(c.host, &plugins.CloudOp{Kind: plugins.CloudOpGet, Uploader: asker, Addr: addr, Keys: q.Keys, Query: &q})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if code == cloud.CodeOK && c.stopped {
		code, msg = cloud.CodeShuttingDown, "server shutting down"
	}
	if code != cloud.CodeOK {
		fail(code, msg)
		return
	}
	op := &getOp{
		c: c, ups: sortedRefs(q.Uploaders), offset: q.Offset, limit: q.Limit, subscribe: q.Subscribe,
		asker: asker, addr: addr, phase: 2, done: done,
	}
	op.keys = distinctKeys(q.Keys)
	op.res = make([]keyRes, len(op.keys))
	op.parts = op.parts1[:0]
	if op.subscribe {
		op.sub = sub()
		added := 0
		for _, k := range op.keys {
			if op.sub.entries[k] == nil {
				added++
			}
		}
		if n := len(op.sub.entries) + added; op.sub.limited && n > c.cfg.MaxSubscriptionsPerClient {
			fail(cloud.CodeTooManySubscriptions, fmt.Sprintf("%d subscriptions, limit %d", n, c.cfg.MaxSubscriptionsPerClient))
			return
		}
		op.prev = make(map[key]*subEntry)
		for _, k := range op.keys {
			ks := c.subs[k]
			if ks == nil {
				ks = &ksub{k: k, entries: make(map[*subscriber]*subEntry)}
				c.subs[k] = ks
			}
			e := ks.entries[op.sub]
			if e == nil {
				e = &subEntry{sub: op.sub, k: k}
				ks.entries[op.sub] = e
				op.sub.entries[k] = e
			} else {
				was := *e
				op.prev[k] = &was
			}
			e.setFilter(op.ups)
			e.state, e.op, e.stale = entryPending, op, false
		}
	}
	if op.offset > 0 {
		op.phase = 1
		op.counts1 = make(map[key]uint32)
	}
	op.expiry = c.getExp.addLocked(op, time.Now())
	c.ops[op] = struct{}{}
	op.planLocked(op.keys)
}

// distinctKeys returns keys without repeats, in their first order. A
// query names few keys (at most cloud.MaxKeys): small ones are compared
// pairwise rather than through a map, which a one-key Get would allocate
// for nothing.
func distinctKeys(keys []key) []key {
	out := make([]key, 0, len(keys))
	if len(keys) <= 16 {
		for _, k := range keys {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
		return out
	}
	seen := make(map[key]struct{}, len(keys))
	for _, k := range keys {
		if _, dup := seen[k]; !dup {
			seen[k] = struct{}{}
			out = append(out, k)
		}
	}
	return out
}

// ownerKeys is the keys of a part: those one owner holds.
type ownerKeys struct {
	rep  *replica
	keys []key
}

// planLocked sends the parts that read keys from their owners.
func (op *getOp) planLocked(keys []key) {
	c := op.c
	// Most Gets read the keys of one owner: one part, its keys as given.
	if rep := c.soleOwnerLocked(keys); rep != nil {
		op.sendPartLocked(rep, keys)
		return
	}
	// By owner, in the order of their first key; a search through the
	// few owners costs less than a map per Get.
	var groups []ownerKeys
	unlinked := false
	for _, k := range keys {
		rep := c.ownerLocked(k)
		if rep == nil || !rep.linked {
			op.unplan(k)
			unlinked = true
			continue
		}
		i := slices.IndexFunc(groups, func(g ownerKeys) bool { return g.rep == rep })
		if i < 0 {
			i = len(groups)
			groups = append(groups, ownerKeys{rep: rep})
		}
		groups[i].keys = append(groups[i].keys, k)
	}
	for _, g := range groups {
		op.sendPartLocked(g.rep, g.keys)
	}
	if unlinked {
		op.backoffLocked(time.Now())
	}
}

// soleOwnerLocked returns the owner of every one of keys when one linked
// replica owns them all, else nil.
func (c *Caller) soleOwnerLocked(keys []key) *replica {
	if len(keys) == 0 {
		return nil
	}
	rep := c.ownerLocked(keys[0])
	if rep == nil || !rep.linked {
		return nil
	}
	for _, k := range keys[1:] {
		if c.ownerLocked(k) != rep {
			return nil
		}
	}
	return rep
}

// sendPartLocked asks rep for keys, which it owns; a send that fails
// plans them again after a backoff. The part keeps keys.
func (op *getOp) sendPartLocked(rep *replica, keys []key) {
	c := op.c
	req := c.nextReqLocked()
	m := cloudwire.SrvGet{Req: req, Asker: op.asker, Addr: op.addr, Keys: keys, Uploaders: op.ups, MaxBytes: uint32(c.budget)}
	switch {
	case op.phase == 1:
		m.CountOnly = true
	case op.counts1 == nil:
		m.Limit = op.limit
	default:
		m.Offset, m.Limit = op.window(keys)
		if m.Limit == 0 && op.limit != 0 {
			m.CountOnly = true
		}
	}
	if op.phase == 2 && op.subscribe {
		// The subscription reaches the owner before the read, so the
		// snapshot and the notifications after it line up.
		for _, k := range keys {
			if kss := c.subs[k]; kss != nil {
				c.placeSubLocked(kss, rep)
			}
		}
	}
	buf := c.bufs.get()
	*buf = m.AppendTo(*buf)
	err := c.host.SendFrame(rep.rs, protocol.KindCloudSrvGet, 0, *buf)
	c.bufs.put(buf)
	if err != nil {
		for _, k := range keys {
			op.unplan(k)
		}
		op.backoffLocked(time.Now())
		return
	}
	cl := &call{kind: callGet, to: rep.at, part: getPart{op: op, keys: keys, to: rep.at}}
	c.calls[req] = cl
	op.parts = append(op.parts, partReq{part: &cl.part, req: req})
}

// window returns the offset and limit, in one owner's own ordering of
// keys, of the global window [offset, offset+limit), from the counts of
// the first round. A zero limit with op.limit > 0 means nothing falls in
// the window.
func (op *getOp) window(keys []key) (off, lim uint32) {
	mine := make(map[key]bool, len(keys))
	for _, k := range keys {
		mine[k] = true
	}
	lo := uint64(op.offset)
	hi := ^uint64(0)
	if op.limit > 0 {
		hi = lo + uint64(op.limit)
	}
	var pos, before, in uint64
	for _, k := range op.keys {
		n := uint64(op.counts1[k])
		if mine[k] {
			before += min(n, max(lo, pos)-pos)
			if s, e := max(pos, lo), min(pos+n, hi); e > s {
				in += e - s
			}
		}
		pos += n
	}
	if op.limit == 0 {
		in = 0
	}
	return uint32(min(before, 1<<32-1)), uint32(min(in, 1<<32-1))
}

// unplan marks k to be planned again.
func (op *getOp) unplan(k key) {
	if op.unplanned == nil {
		op.unplanned = make(map[key]struct{})
	}
	op.unplanned[k] = struct{}{}
}

// dropPart removes part from the parts in flight.
func (op *getOp) dropPart(part *getPart) {
	op.parts = slices.DeleteFunc(op.parts, func(p partReq) bool { return p.part == part })
}

func (op *getOp) backoffLocked(now time.Time) {
	op.attempts++
	op.retryAt = now.Add(retryDelay(op.attempts))
}

// retryLocked plans again the keys whose part failed, once their backoff
// passed.
func (op *getOp) retryLocked(now time.Time) {
	if op.finished || len(op.unplanned) == 0 || op.retryAt.After(now) {
		return
	}
	var keys []key
	for _, k := range op.keys {
		if _, ok := op.unplanned[k]; ok {
			keys = append(keys, k)
		}
	}
	clear(op.unplanned)
	op.planLocked(keys)
}

// partFailedLocked: the part's link went down; plan its keys again at
// once.
func (op *getOp) partFailedLocked(part *getPart, now time.Time) {
	op.dropPart(part)
	if op.finished {
		return
	}
	for _, k := range part.keys {
		op.unplan(k)
	}
	op.retryAt = now
}

func (op *getOp) partResultLocked(part *getPart, m *cloudwire.SrvResult) {
	c := op.c
	op.dropPart(part)
	if op.finished {
		return
	}
	switch {
	case m.Code == cloud.CodeNotOwner || m.Code == cloud.CodeUnavailable || (m.Code == cloud.CodeOK && len(m.Counts) != len(part.keys)) ||
		(len(m.Refused) > 0 && op.phase == 2 && op.counts1 != nil):
		// Refused, or (a window computed for every key of the part,
		// some refused) read with a window that no longer fits.
		for _, k := range part.keys {
			op.unplan(k)
		}
		op.backoffLocked(time.Now())
		return
	case m.Code != cloud.CodeOK:
		c.finishGetLocked(op, m.Code, m.Message)
		return
	}
	// Keys the replica did not serve (another owns them, or their rows
	// are still arriving there) are asked again, alone.
	refused := make(map[int]bool, len(m.Refused))
	for _, r := range m.Refused {
		refused[int(r.Index)] = true
		op.unplan(part.keys[r.Index])
	}
	if len(refused) > 0 {
		op.backoffLocked(time.Now())
	}
	if op.phase == 1 {
		for i, k := range part.keys {
			if !refused[i] {
				op.counts1[k] = m.Counts[i]
			}
		}
		if len(op.parts) == 0 && len(op.unplanned) == 0 {
			op.phase = 2
			op.planLocked(op.keys)
		}
		return
	}
	// The rows' data is the frame's, valid during this call only. A Get
	// that ends here answers from it (done copies what it keeps); one
	// that waits for other parts keeps a copy.
	last := len(op.parts) == 0 && len(op.unplanned) == 0
	rows := m.Rows
	if !last {
		rows = copyRows(rows)
	}
	j := 0
	for i, k := range part.keys {
		if refused[i] {
			continue
		}
		start := j
		for j < len(rows) && rows[j].Key == k {
			j++
		}
		*op.resOf(k) = keyRes{got: true, count: m.Counts[i], rows: rows[start:j:j], cut: m.Cut}
		if op.subscribe {
			if e := op.sub.entries[k]; e != nil && e.op == op && e.state == entryPending {
				e.state = entryHeld
				if ks := c.subs[k]; ks == nil || ks.placed != part.to {
					e.stale = true
				}
			}
		}
	}
	if last {
		c.finishGetLocked(op, cloud.CodeOK, "")
	}
}

// expireLocked implements expirer: past GetTimeout, op answers with what
// it has, the keys not answered missing.
func (op *getOp) expireLocked() { op.c.finishGetLocked(op, cloud.CodeOK, "") }

// finishGetLocked answers op: with an error, or with the merged rows of
// the keys that answered (the others are missing). A subscribing Get's
// entries become active (their held notifications follow the answer), or
// wait for a resync when their snapshot is missing or stale.
func (c *Caller) finishGetLocked(op *getOp, code cloud.Code, msg string) {
	if op.finished {
		return
	}
	op.finished = true
	c.getExp.doneLocked(op.expiry)
	delete(c.ops, op)
	for _, p := range op.parts {
		delete(c.calls, p.req)
	}
	if code != cloud.CodeOK {
		if op.subscribe {
			for _, k := range op.keys {
				ks := c.subs[k]
				e := op.sub.entries[k]
				if ks == nil || e == nil || e.op != op {
					continue
				}
				if prev := op.prev[k]; prev != nil {
					// Back to the subscription it replaced, refreshed.
					e.all, e.ups, e.op, e.stale, e.state = prev.all, prev.ups, nil, false, entryResync
					c.resync[k] = struct{}{}
					c.sendSubLocked(ks)
				} else {
					c.removeEntryLocked(ks, e)
				}
			}
			c.kick()
		}
		op.done(&getResult{code: code, msg: msg})
		return
	}
	res := op.merge()
	resync := false
	var active []key
	if op.subscribe {
		for _, k := range op.keys {
			e := op.sub.entries[k]
			if e == nil || e.op != op {
				continue
			}
			e.op = nil
			if e.state == entryHeld && !e.stale {
				e.state = entryActive
				active = append(active, k)
				continue
			}
			e.state, e.stale = entryResync, false
			c.resync[k] = struct{}{}
			resync = true
		}
	}
	op.done(res)
	if sess := op.sub.sessionOf(); sess != nil {
		// A plugin's Get returns on the caller's goroutine while its
		// notifications run on the session's: the snapshot also goes
		// first into the session's stream, so a handler that keeps a view
		// needs nothing else.
		for _, k := range active {
			sess.pushLocked(c, snapshotNote(k, res, op))
		}
	}
	for _, h := range op.held {
		if h.e.state == entryActive && h.e.sub.entries[h.e.k] == h.e {
			c.deliverHeldLocked(h)
		}
	}
	op.held = nil
	if resync {
		c.kick()
	}
}

// snapshotNote is the Resync that carries key k's part of a subscribing
// Get's answer; its rows are copies. It is truncated when the answer may
// not hold every row of k: a window (offset, limit) or the byte limit cut.
func snapshotNote(k key, res *getResult, op *getOp) cloud.Notification {
	var rows []cloud.Row
	for _, r := range res.rows {
		if r.Key == k {
			r.Data = append([]byte(nil), r.Data...)
			rows = append(rows, r)
		}
	}
	cut := res.truncated || op.offset > 0 || (op.limit > 0 && int(res.total) > len(res.rows))
	return cloud.Notification{Type: cloud.NotifyResync, Key: k, Rows: rows, Truncated: cut}
}

// merge assembles the answer from the keys' results: query key order, the
// global window, the download byte limit.
func (op *getOp) merge() *getResult {
	res := &getResult{code: cloud.CodeOK}
	lo := uint64(op.offset)
	hi := ^uint64(0)
	if op.limit > 0 {
		hi = lo + uint64(op.limit)
	}
	maxBytes := op.c.cfg.MaxBytesPerDownload
	var pos uint64
	bytes := 0
	stopped := false
	for i, k := range op.keys {
		kr := &op.res[i]
		if !kr.got {
			res.partial = true
			res.missing = append(res.missing, k)
			continue
		}
		n := uint64(kr.count)
		res.total += kr.count
		var want uint64
		if s, e := max(pos, lo), min(pos+n, hi); e > s {
			want = e - s
		}
		pos += n
		if stopped || want == 0 {
			continue
		}
		take := min(uint64(len(kr.rows)), want)
		for _, r := range kr.rows[:take] {
			size := cloudwire.RowSize(&r)
			if len(res.rows) > 0 && bytes+size > maxBytes {
				res.truncated, stopped = true, true
				break
			}
			bytes += size
			res.rows = append(res.rows, r)
		}
		if !stopped && take < want && kr.cut {
			res.truncated, stopped = true, true
		}
	}
	return res
}
