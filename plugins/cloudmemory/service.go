package cloudmemory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/plugins/extension"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
	"github.com/cloudrift/cloudrift/rendezvous"
)

// Service is the "cloudmemory" plugin: one replica of a cloud-memory
// group. Its exported fields are the settings (see Config).
//
// It owns the keys that rendezvous hashing over the group's registered
// servers gives it, answers CloudNotOwner for the others, and hands a key
// over silently (telling the servers concerned with CloudSrvMoved) when
// the group changes; a key it takes over is served once its rows arrived
// (settle.go). It deletes a server's rows ServerGrace after the server's
// link broke, however it learned of the server and whether or not the
// server left the registry meanwhile; at once when the server says
// goodbye (SyncBye, or its link closed for its shutdown) or drops its
// game clients' rows; and at the end of the server's resync for the rows
// it did not post again.
type Service struct {
	Config `yaml:",inline"`

	host extension.Host
	log  *zerolog.Logger
	st   *store
	strs stringsPool // for decoding the servers' frames
	bufs bufPool     // for encoding the frames it sends
	// filters: a plugin beside it filters cloud operations
	// (extension.Host.FiltersCloud); without, none is built to be filtered.
	filters bool

	mu     sync.RWMutex
	ring   rendezvous.Ring
	digest uint64 // cloudwire.RingDigest of ring
	ready  bool   // a membership list arrived
	// settled is the latest replica set every member confirmed; since
	// lists the sets seen after it, the current one last (settle.go).
	settled rendezvous.Ring
	since   []rendezvous.Ring
	members map[string]*member     // downstream servers that must confirm, by ID
	servers map[string]*downstream // linked (or in grace) servers by ID
	byKey   map[string]*downstream // the same by subscription key
	stopped bool
}

// downstream is a server that talks to this replica.
type downstream struct {
	rs    plugins.RemoteServer
	inc   uint64
	key   string      // its subscription key in the store: "id#incarnation"
	up    bool        // its link is up
	grace *time.Timer // deletes its rows when its link stays down
	seq   uint64      // identifies the latest grace timer
}

// subKey names one incarnation of a server in the store's subscriptions,
// so an old incarnation going never drops a new one's subscriptions.
func subKey(rs plugins.RemoteServer) string { return fmt.Sprintf("%s#%d", rs.ID(), rs.Incarnation()) }

var (
	_ plugins.Starter                   = (*Service)(nil)
	_ plugins.Stopper                   = (*Service)(nil)
	_ plugins.Validator                 = (*Service)(nil)
	_ extension.FrameHandler            = (*Service)(nil)
	_ extension.PeersHandler            = (*Service)(nil)
	_ plugins.ServerJoinedHandler       = (*Service)(nil)
	_ plugins.ServerConnectedHandler    = (*Service)(nil)
	_ plugins.ServerDisconnectedHandler = (*Service)(nil)
	_ plugins.ServerLeftHandler         = (*Service)(nil)
)

// Validate implements plugins.Validator.
func (s *Service) Validate() error { return s.Config.Validate() }

// Start implements plugins.Starter.
func (s *Service) Start(_ context.Context, h plugins.Host) error {
	eh, err := extensionHost(h)
	if err != nil {
		return err
	}
	s.Config = s.Config.withDefaults()
	s.host = eh
	s.filters = eh.FiltersCloud()
	s.log = h.Logger()
	s.st = newStore(serviceSink{s})
	s.servers = make(map[string]*downstream)
	s.byKey = make(map[string]*downstream)
	s.members = make(map[string]*member)
	return nil
}

// Stop implements plugins.Stopper.
func (s *Service) Stop(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for _, d := range s.servers {
		if d.grace != nil {
			d.grace.Stop()
		}
	}
	return nil
}

// Stats reports what the replica holds.
func (s *Service) Stats() (keys, rows, subscriptions int) {
	st := s.st.stats()
	return st.Keys, st.Rows, st.Subscriptions
}

type serviceSink struct{ s *Service }

func (k serviceSink) notify(servers []string, notice []byte) {
	k.s.mu.RLock()
	defer k.s.mu.RUnlock()
	for _, sk := range servers {
		if d := k.s.byKey[sk]; d != nil && d.up {
			// A failed send means the link is going down; the server
			// resynchronises when it comes back.
			_ = k.s.host.SendFrame(d.rs, protocol.KindCloudSrvNotify, 0, notice)
		}
	}
}

// FrameKinds implements extension.FrameHandler.
func (s *Service) FrameKinds() []protocol.Kind {
	return []protocol.Kind{
		protocol.KindCloudSrvPost, protocol.KindCloudSrvRelease, protocol.KindCloudSrvGet,
		protocol.KindCloudSrvSub, protocol.KindCloudSrvDrop, protocol.KindCloudSrvSync,
	}
}

// ClientFrame implements extension.FrameHandler: a cloud replica has no game
// clients.
func (s *Service) ClientFrame(_ plugins.Client, f protocol.Frame) error {
	return fmt.Errorf("cloud memory: %s from a game client", f.Kind)
}

// ServerFrame implements extension.FrameHandler.
func (s *Service) ServerFrame(rs plugins.RemoteServer, f protocol.Frame) error {
	switch f.Kind {
	case protocol.KindCloudSrvPost:
		var m cloudwire.SrvPost
		if err := decodeWith(&s.strs, &m, f.Payload); err != nil {
			return err
		}
		code, msg := s.post(rs, &m)
		s.reply(rs, m.Req, code, msg)
	case protocol.KindCloudSrvRelease:
		var m cloudwire.SrvRelease
		if err := m.Decode(f.Payload); err != nil {
			return err
		}
		code, msg := s.release(rs, &m)
		s.reply(rs, m.Req, code, msg)
	case protocol.KindCloudSrvGet:
		var m cloudwire.SrvGet
		if err := decodeWith(&s.strs, &m, f.Payload); err != nil {
			return err
		}
		s.get(&m, func(res *cloudwire.SrvResult) {
			// A failed send is handled as reply says.
			buf := s.bufs.get()
			*buf = res.AppendTo(*buf)
			_ = s.host.SendFrame(rs, protocol.KindCloudSrvResult, 0, *buf)
			s.bufs.put(buf)
		})
	case protocol.KindCloudSrvSub:
		var m cloudwire.SrvSub
		if err := m.Decode(f.Payload); err != nil {
			return err
		}
		s.subscribe(rs, &m)
	case protocol.KindCloudSrvDrop:
		var m cloudwire.SrvDrop
		if err := m.Decode(f.Payload); err != nil {
			return err
		}
		if m.Uploader.Server != rs.ID() {
			return fmt.Errorf("cloud memory: %s drops rows of %s", rs.ID(), m.Uploader)
		}
		s.st.dropUploader(m.Uploader)
	case protocol.KindCloudSrvSync:
		var m cloudwire.SrvSync
		if err := m.Decode(f.Payload); err != nil {
			return err
		}
		switch m.Op {
		case cloudwire.SyncStart:
			s.st.syncStart(rs.ID())
		case cloudwire.SyncEnd:
			if n := s.st.syncEnd(rs.ID()); n > 0 {
				s.log.Debug().Str("peer", rs.ID()).Int("rows", n).Msg("deleted rows the server did not post again")
			}
		case cloudwire.SyncBye:
			s.st.dropServer(rs.ID(), 0)
		case cloudwire.SyncRing:
			s.confirmed(rs, m.Ring)
		}
	default:
		return fmt.Errorf("cloud memory: unexpected %s on a replica", f.Kind)
	}
	return nil
}

// reply answers a post or release. A send fails when the link is going
// down (the server resynchronises when it comes back) or when its queue
// is full (ErrBusy: the link read loop that got here pauses once the
// queue is half full, so only a burst of large answers fills it); either
// way the caller's operation ends with its timeout, and says so.
func (s *Service) reply(rs plugins.RemoteServer, req uint64, code cloud.Code, msg string) {
	r := cloudwire.SrvReply{Req: req, Code: code, Message: msg}
	buf := s.bufs.get()
	*buf = r.AppendTo(*buf)
	_ = s.host.SendFrame(rs, protocol.KindCloudSrvReply, 0, *buf)
	s.bufs.put(buf)
}

// errStarting is the answer before the first membership list.
const errStarting = "replica starting: membership not known yet"

// owns reports whether this replica owns k under the current replica set,
// or the code to answer.
func (s *Service) owns(k key) (cloud.Code, string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.ready {
		return cloud.CodeUnavailable, errStarting
	}
	if o := ownerOf(s.ring, k); o != s.host.ServerID() {
		return cloud.CodeNotOwner, fmt.Sprintf("%s is owned by %s", k, o)
	}
	return cloud.CodeOK, ""
}

// serves splits keys into those this replica serves now (their indexes;
// nil when it serves every one) and the refused ones; code is not OK when
// it serves nothing yet.
func (s *Service) serves(keys []key) (served []int, refused []cloudwire.Refusal, code cloud.Code, msg string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.ready {
		return nil, nil, cloud.CodeUnavailable, errStarting
	}
	for i, k := range keys {
		switch c := s.keyCodeLocked(k); {
		case c != cloud.CodeOK:
			if refused == nil {
				for j := range i { // every key so far was served
					served = append(served, j)
				}
			}
			refused = append(refused, cloudwire.Refusal{Index: uint16(i), Code: c})
		case refused != nil:
			served = append(served, i)
		}
	}
	return served, refused, cloud.CodeOK, ""
}

func (s *Service) post(rs plugins.RemoteServer, m *cloudwire.SrvPost) (cloud.Code, string) {
	if m.Uploader.Server != rs.ID() {
		return cloud.CodeBadRequest, fmt.Sprintf("%s posts for %s", rs.ID(), m.Uploader)
	}
	if err := m.Key.Validate(); err != nil {
		return cloud.CodeBadRequest, err.Error()
	}
	if len(m.Data) > s.MaxRowBytes {
		return cloud.CodeRowTooLarge, fmt.Sprintf("row of %d bytes, limit %d", len(m.Data), s.MaxRowBytes)
	}
	if code, msg := s.owns(m.Key); code != cloud.CodeOK {
		return code, msg
	}
	if !m.Sync && s.filters {
		op := plugins.CloudOp{Kind: plugins.CloudOpPost, Uploader: m.Uploader, Addr: m.Addr, Keys: []key{m.Key}, Data: m.Data}
		if code, msg := filter(s.host, &op); code != cloud.CodeOK {
			return code, msg
		}
	}
	s.st.post(m, rs.Incarnation())
	return cloud.CodeOK, ""
}

func (s *Service) release(rs plugins.RemoteServer, m *cloudwire.SrvRelease) (cloud.Code, string) {
	if m.Uploader.Server != rs.ID() {
		return cloud.CodeBadRequest, fmt.Sprintf("%s releases for %s", rs.ID(), m.Uploader)
	}
	if s.filters {
		op := plugins.CloudOp{Kind: plugins.CloudOpRelease, Uploader: m.Uploader, Addr: m.Addr, Keys: m.Keys}
		if code, msg := filter(s.host, &op); code != cloud.CodeOK {
			return code, msg
		}
	}
	// No ownership check: the server releases where it placed the rows.
	s.st.release(m.Uploader, m.Keys)
	return cloud.CodeOK, ""
}

// frameBudget is the encoded row bytes a result for n keys may carry.
func (s *Service) frameBudget(n int) int {
	return s.host.MaxFramePayload() - 8 - 2 - 2 - cloudwire.MaxMessage - 1 - 2 - 4*n - 4
}

// get answers a read with send: at once for a refusal, else with the
// keys' shards locked, so that the snapshot and the notifications after
// it line up on the link. Keys it does not serve now are refused one by
// one (SrvResult.Refused); the others are read as if asked alone.
func (s *Service) get(m *cloudwire.SrvGet, send func(*cloudwire.SrvResult)) {
	res := &cloudwire.SrvResult{Req: m.Req}
	if len(m.Keys) > s.MaxKeysPerQuery {
		res.Code, res.Message = cloud.CodeTooManyKeys, fmt.Sprintf("%d keys, limit %d", len(m.Keys), s.MaxKeysPerQuery)
		send(res)
		return
	}
	served, refused, code, msg := s.serves(m.Keys)
	if res.Code, res.Message = code, msg; code != cloud.CodeOK {
		send(res)
		return
	}
	res.Refused = refused
	if len(refused) == len(m.Keys) {
		res.Counts = make([]uint32, len(m.Keys))
		send(res)
		return
	}
	all := m.Keys
	if len(refused) > 0 {
		q := *m
		q.Keys = make([]key, len(served))
		for j, i := range served {
			q.Keys[j] = all[i]
		}
		m = &q
	}
	if !m.Sync && s.filters {
		q := cloud.Query{Keys: m.Keys, Uploaders: m.Uploaders, Offset: m.Offset, Limit: m.Limit}
		op := plugins.CloudOp{Kind: plugins.CloudOpGet, Uploader: m.Asker, Addr: m.Addr, Keys: m.Keys, Query: &q}
		if res.Code, res.Message = filter(s.host, &op); res.Code != cloud.CodeOK {
			send(res)
			return
		}
	}
	budget := s.frameBudget(len(m.Keys))
	if m.MaxBytes > 0 && int64(m.MaxBytes) < int64(budget) {
		budget = int(m.MaxBytes)
	}
	s.st.getThen(m, max(budget, 1), func(counts []uint32, rows []cloud.Row, cut bool) {
		if len(refused) > 0 {
			spread := make([]uint32, len(all))
			for j, i := range served {
				spread[i] = counts[j]
			}
			counts = spread
		}
		res.Counts, res.Rows, res.Cut = counts, rows, cut
		send(res)
	})
}

func (s *Service) subscribe(rs plugins.RemoteServer, m *cloudwire.SrvSub) {
	if m.Mode != cloudwire.SubRemove {
		// Only keys this replica owns; the server places the others
		// where they belong once its view agrees.
		owned := m.Keys[:0:0]
		s.mu.RLock()
		self := s.host.ServerID()
		for _, k := range m.Keys {
			if s.ready && ownerOf(s.ring, k) == self {
				owned = append(owned, k)
			}
		}
		s.mu.RUnlock()
		m.Keys = owned
	}
	s.st.subscribe(subKey(rs), m)
}

// PeersChanged implements extension.PeersHandler: the replica set changed.
// Keys this replica no longer owns are dropped and the servers that had
// rows or subscriptions under them are told to place them again.
func (s *Service) PeersChanged(peers []extension.Peer) error {
	ids := make([]string, len(peers))
	for i, p := range peers {
		ids[i] = p.ID
	}
	r := rendezvous.NewRing(ids)
	s.mu.Lock()
	if s.ready && s.ring.Equal(r) {
		s.mu.Unlock()
		return nil
	}
	s.ready = true
	s.ringChangedLocked(r)
	s.mu.Unlock()
	// Not under s.mu: the store notifies under its shard locks, and the
	// sink takes s.mu.
	self := s.host.ServerID()
	tell := s.st.moveOut(func(k key) bool { return ownerOf(r, k) == self })
	s.mu.RLock()
	defer s.mu.RUnlock()
	// The store names servers by ID (rows) or subscription key.
	byServer := make(map[*downstream][]key)
	for name, keys := range tell {
		d := s.byKey[name]
		if d == nil {
			d = s.servers[name]
		}
		if d != nil && d.up {
			byServer[d] = append(byServer[d], keys...)
		}
	}
	moved := make(map[*downstream]bool, len(byServer))
	for d, keys := range byServer {
		moved[d] = true
		slices.SortFunc(keys, compareKeys)
		keys = slices.Compact(keys)
		for len(keys) > 0 {
			n := min(len(keys), 1024)
			m := cloudwire.SrvMoved{Keys: keys[:n]}
			_ = s.host.SendFrame(d.rs, protocol.KindCloudSrvMoved, 0, m.AppendTo(nil))
			keys = keys[n:]
		}
	}
	s.askConfirmLocked(moved)
	s.log.Info().Strs("replicas", r.IDs()).Int("servers_told", len(tell)).Msg("cloud replica set changed")
	return nil
}

// ServerConnected implements plugins.ServerConnectedHandler.
func (s *Service) ServerConnected(rs plugins.RemoteServer) error {
	if rs.Direction() != plugins.Downstream {
		return nil
	}
	var old *downstream
	s.mu.Lock()
	d := s.servers[rs.ID()]
	if d != nil && d.inc != rs.Incarnation() {
		old, d = d, nil
	}
	if d == nil {
		d = &downstream{}
		s.servers[rs.ID()] = d
	}
	if d.grace != nil {
		d.grace.Stop()
		d.grace = nil
	}
	d.rs, d.inc, d.key, d.up = rs, rs.Incarnation(), subKey(rs), true
	s.byKey[d.key] = d
	s.memberLocked(rs)
	if old != nil {
		delete(s.byKey, old.key)
	}
	s.mu.Unlock()
	if old != nil {
		// A new incarnation: the old one's rows are gone with it.
		if old.grace != nil {
			old.grace.Stop()
		}
		s.st.dropServer(rs.ID(), old.inc)
	}
	return nil
}

// ServerDisconnected implements plugins.ServerDisconnectedHandler: the
// server's subscriptions go now (nothing could reach it); its rows go now
// when it closed the link because it shuts down, else after ServerGrace
// unless it comes back.
func (s *Service) ServerDisconnected(rs plugins.RemoteServer, reason error) error {
	if rs.Direction() != plugins.Downstream {
		return nil
	}
	s.st.dropSubscriptions(subKey(rs))
	if shutdown(reason) {
		s.forget(rs)
		if n := s.st.dropServer(rs.ID(), rs.Incarnation()); n > 0 {
			s.log.Info().Str("peer", rs.ID()).Int("rows", n).Msg("server shut down: its rows are deleted")
		}
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.servers[rs.ID()]
	if d == nil || d.inc != rs.Incarnation() || s.stopped {
		return nil
	}
	d.up = false
	if d.grace != nil {
		d.grace.Stop()
	}
	id, inc := rs.ID(), rs.Incarnation()
	d.seq++
	seq := d.seq
	d.grace = time.AfterFunc(s.ServerGrace.Duration(), func() { s.graceOver(id, inc, seq) })
	return nil
}

func (s *Service) graceOver(id string, inc, seq uint64) {
	s.mu.Lock()
	d := s.servers[id]
	if d == nil || d.seq != seq || d.inc != inc || d.up || s.stopped {
		s.mu.Unlock()
		return
	}
	delete(s.servers, id)
	delete(s.byKey, d.key)
	s.mu.Unlock()
	n := s.st.dropServer(id, inc)
	s.st.forgetServer(id)
	s.log.Info().Str("peer", id).Int("rows", n).Msg("server gone past its grace: its rows are deleted")
}

// shutdown reports whether a link closed because the peer shuts down
// gracefully (its Close said so): nothing of it will come back.
func shutdown(reason error) bool {
	var ce *plugins.CloseError
	return errors.As(reason, &ce) && ce.ByPeer && ce.Reason == protocol.ReasonShutdown
}

// forget drops rs's entry (and stops its grace timer) when it is rs's.
func (s *Service) forget(rs plugins.RemoteServer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.servers[rs.ID()]
	if d == nil || d.inc != rs.Incarnation() {
		return
	}
	if d.grace != nil {
		d.grace.Stop()
	}
	delete(s.servers, rs.ID())
	delete(s.byKey, d.key)
}

// ServerLeft implements plugins.ServerLeftHandler: the server is no longer
// a member (it need not confirm placements any more). Its rows are not
// deleted here: a server that left the registry, or was only known by its
// link, may have died or may only be cut off, so a broken link's grace
// runs its course (a graceful leave deleted them already).
func (s *Service) ServerLeft(rs plugins.RemoteServer) error {
	if rs.Direction() != plugins.Downstream {
		return nil
	}
	s.st.dropSubscriptions(subKey(rs))
	s.forgetMember(rs)
	return nil
}

func compareKeys(a, b key) int {
	if c := strings.Compare(a.Primary, b.Primary); c != 0 {
		return c
	}
	return int(int64(a.Secondary) - int64(b.Secondary))
}

// CloudStoreStats reports the rows, keys and subscriptions (one per
// subscribing server and key) this replica holds, for the operations
// port's cloudrift_cloud_rows, _keys and _subscriptions. It walks the
// store, so it is meant for scrapes, not for every message.
func (s *Service) CloudStoreStats() (rows, keys, subscriptions int) {
	if s.st == nil {
		return 0, 0, 0
	}
	st := s.st.stats()
	return st.Rows, st.Keys, st.Subscriptions
}
