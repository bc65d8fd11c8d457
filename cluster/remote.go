package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/registry"
)

// remoteGroup is a related group seen from this server. It implements
// plugins.RemoteGroup.
type remoteGroup struct {
	s    *Server
	name string
	dir  plugins.Direction
	// servers holds the current incarnation of each remote server that
	// has not left, by ID. Guarded by s.mu.
	servers map[string]*remote
}

var _ plugins.RemoteGroup = (*remoteGroup)(nil)

func newRemoteGroup(s *Server, name string, dir plugins.Direction) *remoteGroup {
	return &remoteGroup{s: s, name: name, dir: dir, servers: make(map[string]*remote)}
}

func (g *remoteGroup) Name() string                 { return g.name }
func (g *remoteGroup) Direction() plugins.Direction { return g.dir }

func (g *remoteGroup) Servers() []plugins.RemoteServer {
	g.s.mu.Lock()
	rs := make([]plugins.RemoteServer, 0, len(g.servers))
	for _, r := range g.servers {
		rs = append(rs, r)
	}
	g.s.mu.Unlock()
	sort.Slice(rs, func(i, j int) bool { return rs[i].ID() < rs[j].ID() })
	return rs
}

func (g *remoteGroup) Server(id string) (plugins.RemoteServer, bool) {
	g.s.mu.Lock()
	defer g.s.mu.Unlock()
	r, ok := g.servers[id]
	if !ok {
		return nil, false
	}
	return r, true
}

// remote is one incarnation of a remote server. It implements
// plugins.RemoteServer.
type remote struct {
	s   *Server
	g   *remoteGroup
	id  string
	inc uint64

	link    atomic.Pointer[link] // the link up, or nil
	state   atomic.Uint32        // plugins.State
	leaving atomic.Bool          // the peer said it is shutting down
	retired atomic.Bool          // a newer incarnation replaced it

	// evMu serializes this remote's lifecycle events and guards the
	// fields below. Hooks for this remote run with it held.
	evMu       sync.Mutex
	joined     bool
	left       bool
	inRegistry bool
	attaching  int // attach calls waiting out an older link

	// Guarded by s.mu.
	addr       string
	dialCancel context.CancelFunc
	// absentSince is when the registry stopped listing this upstream
	// server while its link was up (zero while listed). The heartbeat
	// loop closes the link once LeaveGrace has passed.
	absentSince time.Time
}

var _ plugins.RemoteServer = (*remote)(nil)

func newRemote(g *remoteGroup, id string, inc uint64, addr string) *remote {
	return &remote{s: g.s, g: g, id: id, inc: inc, addr: addr}
}

func (r *remote) ID() string                   { return r.id }
func (r *remote) Group() string                { return r.g.name }
func (r *remote) Incarnation() uint64          { return r.inc }
func (r *remote) Direction() plugins.Direction { return r.g.dir }

func (r *remote) State() plugins.State {
	st := plugins.State(r.state.Load())
	if st == 0 {
		return plugins.StateJoined
	}
	return st
}

func (r *remote) Address() string {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return r.addr
}

// Send implements plugins.RemoteServer.
func (r *remote) Send(tag uint16, payload []byte) error {
	l := r.link.Load()
	if l == nil {
		return fmt.Errorf("%w: %s (%s)", plugins.ErrNotConnected, r.id, r.State())
	}
	return l.send(protocol.KindUser, tag, payload)
}

func (r *remote) String() string { return r.g.name + "/" + r.id }

// attach makes l the remote's link, replacing (and waiting out) an older
// one, and fires Joined and Connected as due. It returns false when the
// remote was retired, in which case l must be closed.
func (r *remote) attach(l *link) bool {
	r.evMu.Lock()
	defer r.evMu.Unlock()
	for {
		if r.left || r.retired.Load() {
			return false
		}
		old := r.link.Load()
		if old == nil {
			break
		}
		old.close(protocol.ReasonReplaced, "a newer link to the same server replaced it", nil, true)
		r.attaching++
		r.evMu.Unlock()
		<-old.done
		r.evMu.Lock()
		r.attaching--
	}
	r.fireJoinedLocked()
	r.link.Store(l)
	r.state.Store(uint32(plugins.StateConnected))
	r.s.hooks.connected(r)
	return true
}

// detach ends l's time as the remote's link: it fires Disconnected, and
// Left when the registry no longer lists the remote.
func (r *remote) detach(l *link, le *plugins.CloseError) {
	r.evMu.Lock()
	defer r.evMu.Unlock()
	if r.link.Load() == l {
		r.link.Store(nil)
		r.state.Store(uint32(plugins.StateDisconnected))
		r.s.hooks.disconnected(r, le)
	}
	r.maybeLeftLocked()
}

func (r *remote) fireJoinedLocked() {
	if r.joined {
		return
	}
	r.joined = true
	r.state.Store(uint32(plugins.StateJoined))
	r.s.hooks.joined(r)
}

// maybeLeftLocked fires Left once the remote has neither a registry entry
// (or was retired) nor a link.
func (r *remote) maybeLeftLocked() {
	if !r.joined || r.left || r.link.Load() != nil || r.attaching > 0 {
		return
	}
	if r.inRegistry && !r.retired.Load() {
		return
	}
	r.left = true
	r.state.Store(uint32(plugins.StateLeft))
	r.s.mu.Lock()
	if r.g.servers[r.id] == r {
		delete(r.g.servers, r.id)
	}
	r.s.mu.Unlock()
	r.s.hooks.left(r)
}

// retire ends an incarnation that a newer one of the same ID replaced.
func (r *remote) retire() {
	r.retired.Store(true)
	r.stopDialer()
	if l := r.link.Load(); l != nil {
		l.close(protocol.ReasonReplaced, "the server restarted with a new incarnation", nil, true)
	}
	r.evMu.Lock()
	r.maybeLeftLocked()
	r.evMu.Unlock()
}

// remoteForLink returns the remote for an authenticated downstream link,
// creating it (and retiring an older incarnation) as needed.
func (g *remoteGroup) remoteForLink(id string, inc uint64, addr string) *remote {
	s := g.s
	s.mu.Lock()
	r := g.servers[id]
	var old *remote
	if r != nil && r.inc != inc {
		old, r = r, nil
	}
	if r == nil {
		r = newRemote(g, id, inc, addr)
		g.servers[id] = r
	}
	s.mu.Unlock()
	if old != nil {
		old.retire()
	}
	return r
}

// watchLoop applies the registry's snapshots of group g until the watch
// ends.
func (s *Server) watchLoop(g *remoteGroup, ch <-chan []registry.Member) {
	for {
		select {
		case <-s.ctx.Done():
			return
		case ms, ok := <-ch:
			if !ok {
				return
			}
			if !s.running() {
				return
			}
			s.applySnapshot(g, ms)
		}
	}
}

// applySnapshot reconciles g's remote servers with a full registry
// snapshot: new members join (and are dialled when upstream), absent ones
// lose their registry entry (upstream ones are no longer dialled and their
// link closes) and leave once their link is down.
func (s *Server) applySnapshot(g *remoteGroup, members []registry.Member) {
	present := make(map[string]bool, len(members))
	for _, m := range members {
		if m.ID == s.id || m.Group != g.name {
			continue
		}
		present[m.ID] = true
		s.mu.Lock()
		r := g.servers[m.ID]
		var old *remote
		if r != nil && r.inc != m.Incarnation {
			if g.dir == plugins.Downstream && r.link.Load() != nil {
				// The live link is fresher than the registry's entry.
				s.mu.Unlock()
				continue
			}
			old, r = r, nil
		}
		if r == nil {
			r = newRemote(g, m.ID, m.Incarnation, m.Address)
			g.servers[m.ID] = r
		}
		r.addr = m.Address
		r.absentSince = time.Time{}
		s.mu.Unlock()
		if old != nil {
			old.retire()
		}
		r.evMu.Lock()
		r.inRegistry = true
		r.fireJoinedLocked()
		r.evMu.Unlock()
		if g.dir == plugins.Upstream {
			r.startDialer()
		}
	}
	s.mu.Lock()
	var gone []*remote
	for id, r := range g.servers {
		if !present[id] {
			gone = append(gone, r)
		}
	}
	s.mu.Unlock()
	for _, r := range gone {
		r.evMu.Lock()
		was := r.inRegistry
		r.inRegistry = false
		r.evMu.Unlock()
		if !was {
			continue
		}
		if g.dir == plugins.Upstream {
			// A live link survives for LeaveGrace (the registry may
			// only have forgotten it for a moment); the dialer ends
			// with the link. Without a link, dialling stops now.
			s.mu.Lock()
			live := r.link.Load() != nil
			if live {
				r.absentSince = time.Now()
			}
			s.mu.Unlock()
			if !live {
				r.stopDialer()
			}
		}
		r.evMu.Lock()
		r.maybeLeftLocked()
		r.evMu.Unlock()
	}
}

// startDialer starts the dial loop of an upstream remote unless one runs.
func (r *remote) startDialer() {
	s := r.s
	s.mu.Lock()
	if r.dialCancel != nil || !s.running() || r.retired.Load() {
		s.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	r.dialCancel = cancel
	s.mu.Unlock()
	s.goTracked(func() { r.dialLoop(ctx) })
}

func (r *remote) stopDialer() {
	r.s.mu.Lock()
	cancel := r.dialCancel
	r.dialCancel = nil
	r.s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// permanentRefusal reports reasons that redialling the same incarnation
// cannot fix: the dialer stops instead of looping against a peer that keeps
// refusing it.
func permanentRefusal(reason protocol.Reason) bool {
	switch reason {
	case protocol.ReasonAuth, protocol.ReasonWrongSystem, protocol.ReasonNotDownstream, protocol.ReasonVersion:
		return true
	}
	return false
}

// dialLoop dials r, serves the link, and redials with jittered exponential
// backoff, until ctx ends (the registry dropped r, or shutdown), the peer
// refuses for good, or the peer said it is leaving.
func (r *remote) dialLoop(ctx context.Context) {
	s := r.s
	log := s.log.With().Str("peer", r.id).Str("peer_group", r.g.name).Logger()
	minB, maxB := s.links.BackoffMin.D(), s.links.BackoffMax.D()
	backoff := minB
	failures := 0
	for ctx.Err() == nil && s.running() && !r.leaving.Load() {
		l, err := s.dial(ctx, r)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var le *plugins.CloseError
			if errors.As(err, &le) && permanentRefusal(le.Reason) {
				log.Error().Err(err).Msg("peer refuses this server for good; not redialling this incarnation")
				return
			}
			failures++
			ev := log.Debug()
			if failures == 1 || failures%20 == 0 {
				ev = log.Warn()
			}
			ev.Err(err).Int("failures", failures).Dur("retry_in", backoff).Msg("dial failed")
		} else {
			failures = 0
			start := time.Now()
			l.run()
			if time.Since(start) > maxB {
				backoff = minB
			}
			// The registry dropped the server while the link was up:
			// do not redial it. A later snapshot listing it again
			// starts a new dialer.
			s.mu.Lock()
			absent := !r.absentSince.IsZero()
			if absent {
				r.dialCancel = nil
			}
			s.mu.Unlock()
			if absent {
				return
			}
		}
		if !sleepCtx(ctx, jitter(backoff)) {
			return
		}
		backoff = min(backoff*2, maxB)
	}
}

// jitter returns a duration in [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(half)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
