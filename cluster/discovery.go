package cluster

import (
	"time"

	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/registry"
)

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
