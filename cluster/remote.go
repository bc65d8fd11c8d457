package cluster

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
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
	// closed adds up the counters of the group's links that are gone.
	// Guarded by s.mu.
	closed LinkTotals
	// departed holds, by ID, the incarnation of each server that left
	// because it said it was leaving while the registry still listed it,
	// so that the listing does not make it join again. An entry goes
	// once the registry stops listing that incarnation. Guarded by s.mu.
	departed map[string]uint64
}

var _ plugins.RemoteGroup = (*remoteGroup)(nil)

func newRemoteGroup(s *Server, name string, dir plugins.Direction) *remoteGroup {
	return &remoteGroup{s: s, name: name, dir: dir, servers: make(map[string]*remote), departed: make(map[string]uint64)}
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
	leaving atomic.Bool          // the peer said it is shutting down (Leaving, or Close with Shutdown)
	retired atomic.Bool          // a newer incarnation replaced it

	// evMu serializes this remote's lifecycle events and guards the
	// fields below. Hooks for this remote run with it held.
	evMu   sync.Mutex
	joined bool
	left   bool
	// inRegistry is whether the group's debounced membership lists this
	// incarnation: it turns false only after the registry has not listed
	// it for links.leaveGrace.
	inRegistry bool
	attaching  int // attach calls waiting out an older link

	// Guarded by s.mu.
	addr       string
	dialCancel context.CancelFunc
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

// maybeLeftLocked fires Left once the remote has no link and is gone for
// good: the registry has not listed it for links.leaveGrace, a newer
// incarnation replaced it, or it said it was leaving. A live link alone
// keeps a remote, whatever the registry says.
func (r *remote) maybeLeftLocked() {
	if !r.joined || r.left || r.link.Load() != nil || r.attaching > 0 {
		return
	}
	retired, leaving := r.retired.Load(), r.leaving.Load()
	if r.inRegistry && !retired && !leaving {
		return
	}
	r.left = true
	r.state.Store(uint32(plugins.StateLeft))
	r.s.mu.Lock()
	if r.g.servers[r.id] == r {
		delete(r.g.servers, r.id)
	}
	if r.inRegistry && !retired {
		r.g.departed[r.id] = r.inc
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
