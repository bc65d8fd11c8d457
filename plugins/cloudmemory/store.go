package cloudmemory

import (
	"bytes"
	"slices"
	"sync"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
)

// The store of one cloud replica: the rows and server-level subscriptions
// of the keys it owns. It is split into shards by key; every change to a
// key happens under its shard's lock and its notifications are handed to
// the sink under that lock, so subscribers see the changes of one key in
// the order they were made.
//
// A row's uploader always posts through its own server (a game client
// through its external server, a server as itself), so the uploader's
// Server is also the server the row came through.

type (
	key = cloud.Key
	ref = protocol.ClientRef
)

// sink receives notifications. It is called with a shard lock held: it
// must not block or call back into the store.
type sink interface {
	// notify sends one encoded CloudNotice to each server.
	notify(servers []string, notice []byte)
}

const storeShards = 64

// store holds rows and subscriptions. All methods are safe for concurrent
// use.
type store struct {
	sink   sink
	shards [storeShards]shard

	mu     sync.RWMutex      // guards epochs
	epochs map[string]uint64 // sync epoch per uploader server
}

type shard struct {
	mu   sync.Mutex
	keys map[key]*keyState
	// byServer indexes rows by uploader server, then uploader.
	byServer map[string]map[ref]map[key]struct{}
	// subsOf indexes subscribed keys by subscribing server.
	subsOf map[string]map[key]struct{}
}

type keyState struct {
	rows   map[ref]*row
	sorted []*row // rows in uploader order; nil when it must be rebuilt
	subs   map[string]*serverSub
}

type row struct {
	up    ref
	addr  string
	inc   uint64 // incarnation of the uploader's server
	epoch uint64 // sync epoch of the uploader's server when last posted
	data  []byte // never modified in place: a post replaces the slice
}

// serverSub is what one server subscribes to under one key.
type serverSub struct {
	all bool
	ups map[ref]struct{} // when !all
}

func (s *serverSub) matches(up ref) bool {
	if s.all {
		return true
	}
	_, ok := s.ups[up]
	return ok
}

func newStore(sk sink) *store {
	st := &store{sink: sk, epochs: make(map[string]uint64)}
	for i := range st.shards {
		sh := &st.shards[i]
		sh.keys = make(map[key]*keyState)
		sh.byServer = make(map[string]map[ref]map[key]struct{})
		sh.subsOf = make(map[string]map[key]struct{})
	}
	return st
}

func (st *store) shard(k key) *shard { return &st.shards[keyHash(k)%storeShards] }

func (st *store) epoch(server string) uint64 {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.epochs[server]
}

// post creates or overwrites the row (p.Key, p.Uploader) for uploader
// server incarnation inc and notifies subscribers. A sync post of a row
// that is already identical refreshes it silently. It reports whether the
// row was created.
func (st *store) post(p *cloudwire.SrvPost, inc uint64) bool {
	epoch := st.epoch(p.Uploader.Server)
	sh := st.shard(p.Key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ks := sh.keys[p.Key]
	if ks == nil {
		ks = &keyState{rows: make(map[ref]*row)}
		sh.keys[p.Key] = ks
	}
	r := ks.rows[p.Uploader]
	created := r == nil
	if !created && p.Sync && r.inc == inc && r.addr == p.Addr && bytes.Equal(r.data, p.Data) {
		r.epoch = epoch
		return false
	}
	if created {
		r = &row{up: p.Uploader}
		ks.rows[p.Uploader] = r
		ks.sorted = nil
		sh.index(p.Key, p.Uploader)
	}
	r.addr, r.inc, r.epoch = p.Addr, inc, epoch
	r.data = append(make([]byte, 0, len(p.Data)), p.Data...)
	st.notifyLocked(ks, p.Key, r, cloudwire.Updated, created)
	return created
}

func (sh *shard) index(k key, up ref) {
	ups := sh.byServer[up.Server]
	if ups == nil {
		ups = make(map[ref]map[key]struct{})
		sh.byServer[up.Server] = ups
	}
	keys := ups[up]
	if keys == nil {
		keys = make(map[key]struct{})
		ups[up] = keys
	}
	keys[k] = struct{}{}
}

func (sh *shard) unindex(k key, up ref) {
	ups := sh.byServer[up.Server]
	keys := ups[up]
	delete(keys, k)
	if len(keys) == 0 {
		delete(ups, up)
		if len(ups) == 0 {
			delete(sh.byServer, up.Server)
		}
	}
}

// notifyLocked sends a notice about r to the servers subscribed to k whose
// filter matches r's uploader. The shard lock is held.
func (st *store) notifyLocked(ks *keyState, k key, r *row, t cloudwire.NoticeType, created bool) {
	if len(ks.subs) == 0 {
		return
	}
	var servers []string
	for srv, sub := range ks.subs {
		if sub.matches(r.up) {
			servers = append(servers, srv)
		}
	}
	if len(servers) == 0 {
		return
	}
	n := cloudwire.Notice{Type: t, Created: created, Row: r.export(k)}
	st.sink.notify(servers, n.AppendTo(make([]byte, 0, 2+cloudwire.RowSize(&n.Row))))
}

func (r *row) export(k key) cloud.Row {
	return cloud.Row{Key: k, Uploader: r.up, Addr: r.addr, Via: r.up.Server, Data: r.data}
}

// deleteLocked removes the row of up under k and notifies its deletion
// (unless silent). The shard lock is held.
func (st *store) deleteLocked(sh *shard, k key, up ref, silent bool) bool {
	ks := sh.keys[k]
	if ks == nil {
		return false
	}
	r := ks.rows[up]
	if r == nil {
		return false
	}
	delete(ks.rows, up)
	ks.sorted = nil
	sh.unindex(k, up)
	if !silent {
		st.notifyLocked(ks, k, r, cloudwire.Deleted, false)
	}
	sh.dropIfEmpty(k, ks)
	return true
}

func (sh *shard) dropIfEmpty(k key, ks *keyState) {
	if len(ks.rows) == 0 && len(ks.subs) == 0 {
		delete(sh.keys, k)
	}
}

// release deletes up's rows under keys and notifies each deletion. It
// returns how many rows it deleted.
func (st *store) release(up ref, keys []key) int {
	n := 0
	for _, k := range keys {
		sh := st.shard(k)
		sh.mu.Lock()
		if st.deleteLocked(sh, k, up, false) {
			n++
		}
		sh.mu.Unlock()
	}
	return n
}

// dropUploader deletes every row of up (it disconnected).
func (st *store) dropUploader(up ref) int {
	n := 0
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.Lock()
		for k := range sh.byServer[up.Server][up] {
			if st.deleteLocked(sh, k, up, false) {
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n
}

// dropServer deletes every row that came through server (incarnation
// inc; 0 means any) and notifies each deletion: the server is gone.
func (st *store) dropServer(server string, inc uint64) int {
	return st.dropWhere(server, func(r *row) bool { return inc == 0 || r.inc == inc })
}

func (st *store) dropWhere(server string, match func(*row) bool) int {
	n := 0
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.Lock()
		type victim struct {
			k  key
			up ref
		}
		var vs []victim
		for up, keys := range sh.byServer[server] {
			for k := range keys {
				if ks := sh.keys[k]; ks != nil {
					if r := ks.rows[up]; r != nil && match(r) {
						vs = append(vs, victim{k, up})
					}
				}
			}
		}
		for _, v := range vs {
			if st.deleteLocked(sh, v.k, v.up, false) {
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n
}

// syncStart starts a resynchronisation with server: its rows are stale
// until posted again.
func (st *store) syncStart(server string) {
	st.mu.Lock()
	st.epochs[server]++
	st.mu.Unlock()
}

// syncEnd deletes (and notifies) server's rows that were not posted since
// the last syncStart.
func (st *store) syncEnd(server string) int {
	epoch := st.epoch(server)
	return st.dropWhere(server, func(r *row) bool { return r.epoch < epoch })
}

// forgetServer drops server's sync epoch once it has no rows left.
func (st *store) forgetServer(server string) {
	st.mu.Lock()
	delete(st.epochs, server)
	st.mu.Unlock()
}

// sortedLocked returns the key's rows in uploader order.
func (ks *keyState) sortedLocked() []*row {
	if ks.sorted == nil && len(ks.rows) > 0 {
		s := make([]*row, 0, len(ks.rows))
		for _, r := range ks.rows {
			s = append(s, r)
		}
		slices.SortFunc(s, func(a, b *row) int { return protocol.CompareRefs(a.up, b.up) })
		ks.sorted = s
	}
	return ks.sorted
}

// get reads the rows of q.Keys (in that order, then uploader order),
// filtered by q.Uploaders, and returns the window [Offset, Offset+Limit)
// of them, cut once the encoded rows would pass maxBytes (at least one row
// is returned), and the count of matching rows of every key. The caller
// must not modify the rows' data.
func (st *store) get(q *cloudwire.SrvGet, maxBytes int) (counts []uint32, rows []cloud.Row, cut bool) {
	st.getThen(q, maxBytes, func(c []uint32, r []cloud.Row, x bool) { counts, rows, cut = c, r, x })
	return counts, rows, cut
}

// getThen is get, calling emit with the result while the keys' shards are
// still locked: no change to these keys can be notified between the
// snapshot and what emit sends, so a reply that emit queues on a link
// reaches the server before any later notification.
func (st *store) getThen(q *cloudwire.SrvGet, maxBytes int, emit func(counts []uint32, rows []cloud.Row, cut bool)) {
	// Lock every shard involved, in index order (the only place that
	// holds more than one).
	var few [8]int // most reads name few keys: no allocation
	idx := few[:0]
	for _, k := range q.Keys {
		idx = append(idx, int(keyHash(k)%storeShards))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		st.shards[i].mu.Lock()
	}
	defer func() {
		for _, i := range idx {
			st.shards[i].mu.Unlock()
		}
	}()
	filter := sortedRefs(q.Uploaders)
	counts := make([]uint32, len(q.Keys))
	var rows []cloud.Row
	cut := false
	pos, bytes := uint64(0), 0
	end := uint64(q.Offset) + uint64(q.Limit)
	for i, k := range q.Keys {
		ks := st.shard(k).keys[k]
		if ks == nil {
			continue
		}
		var matched []*row
		if filter != nil {
			for _, up := range filter {
				if r := ks.rows[up]; r != nil {
					matched = append(matched, r)
				}
			}
		} else {
			matched = ks.sortedLocked()
		}
		counts[i] = uint32(len(matched))
		for _, r := range matched {
			in := pos >= uint64(q.Offset) && (q.Limit == 0 || pos < end)
			pos++
			if !in || cut || q.CountOnly {
				continue
			}
			out := r.export(k)
			size := cloudwire.RowSize(&out)
			if maxBytes > 0 && len(rows) > 0 && bytes+size > maxBytes {
				cut = true
				continue
			}
			bytes += size
			rows = append(rows, out)
		}
	}
	emit(counts, rows, cut)
}

// sortedRefs returns refs sorted and without duplicates, or nil when
// empty.
func sortedRefs(refs []ref) []ref {
	if len(refs) == 0 {
		return nil
	}
	s := slices.Clone(refs)
	slices.SortFunc(s, protocol.CompareRefs)
	return slices.CompactFunc(s, func(a, b ref) bool { return a == b })
}

// subscribe sets server's subscription to each key: every uploader, the
// listed ones, or none (CloudSubRemove).
func (st *store) subscribe(server string, m *cloudwire.SrvSub) {
	for _, k := range m.Keys {
		sh := st.shard(k)
		sh.mu.Lock()
		ks := sh.keys[k]
		if m.Mode == cloudwire.SubRemove {
			if ks != nil && ks.subs[server] != nil {
				delete(ks.subs, server)
				sh.unsub(server, k)
				sh.dropIfEmpty(k, ks)
			}
			sh.mu.Unlock()
			continue
		}
		if ks == nil {
			ks = &keyState{rows: make(map[ref]*row)}
			sh.keys[k] = ks
		}
		if ks.subs == nil {
			ks.subs = make(map[string]*serverSub)
		}
		sub := &serverSub{all: m.Mode == cloudwire.SubAll}
		if !sub.all {
			sub.ups = make(map[ref]struct{}, len(m.Uploaders))
			for _, up := range m.Uploaders {
				sub.ups[up] = struct{}{}
			}
		}
		ks.subs[server] = sub
		keys := sh.subsOf[server]
		if keys == nil {
			keys = make(map[key]struct{})
			sh.subsOf[server] = keys
		}
		keys[k] = struct{}{}
		sh.mu.Unlock()
	}
}

func (sh *shard) unsub(server string, k key) {
	keys := sh.subsOf[server]
	delete(keys, k)
	if len(keys) == 0 {
		delete(sh.subsOf, server)
	}
}

// dropSubscriptions removes every subscription of server (its link is
// down: nothing could reach it).
func (st *store) dropSubscriptions(server string) {
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.Lock()
		for k := range sh.subsOf[server] {
			if ks := sh.keys[k]; ks != nil {
				delete(ks.subs, server)
				sh.dropIfEmpty(k, ks)
			}
		}
		delete(sh.subsOf, server)
		sh.mu.Unlock()
	}
}

// moveOut drops, silently, the rows and subscriptions of every key that
// owned reports false for (another replica owns it now), and returns, by
// server, the keys each server had rows or subscriptions under: those
// servers place them again with the new owner.
func (st *store) moveOut(owned func(key) bool) map[string][]key {
	tell := make(map[string][]key)
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.Lock()
		for k, ks := range sh.keys {
			if owned(k) {
				continue
			}
			servers := make(map[string]struct{})
			for up := range ks.rows {
				servers[up.Server] = struct{}{}
				sh.unindex(k, up)
			}
			for srv := range ks.subs {
				servers[srv] = struct{}{}
				sh.unsub(srv, k)
			}
			delete(sh.keys, k)
			for srv := range servers {
				tell[srv] = append(tell[srv], k)
			}
		}
		sh.mu.Unlock()
	}
	return tell
}

// storeStats counts what a store holds.
type storeStats struct {
	Keys, Rows, Subscriptions int
	Bytes                     int // data bytes of every row
}

func (st *store) stats() storeStats {
	var s storeStats
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.Lock()
		s.Keys += len(sh.keys)
		for _, ks := range sh.keys {
			s.Rows += len(ks.rows)
			s.Subscriptions += len(ks.subs)
			for _, r := range ks.rows {
				s.Bytes += len(r.data)
			}
		}
		sh.mu.Unlock()
	}
	return s
}
