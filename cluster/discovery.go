package cluster

import (
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/registry"
)

// watchLoop applies the membership of group g, as the registry reports it
// and a roster debounces it (roster.go), until the watch ends.
func (s *Server) watchLoop(g *remoteGroup, ch <-chan []registry.Member) {
	s.followRegistry("group "+g.name, ch, func(ms []registry.Member) { s.applySnapshot(g, ms) })
}

// applySnapshot reconciles g's remote servers with the group's debounced
// membership. New members join (and are dialled when upstream) at once.
// A member no longer listed has been missing from the registry for
// links.leaveGrace: it loses its registry entry, which only matters once
// its link is down. A live link is trusted over the registry and stays;
// an upstream server is no longer dialled once its link is down; and the
// server leaves when both are gone.
func (s *Server) applySnapshot(g *remoteGroup, members []registry.Member) {
	listed := make(map[string]uint64, len(members))
	for _, m := range members {
		if m.ID == s.id || m.Group != g.name {
			continue
		}
		listed[m.ID] = m.Incarnation
		s.mu.Lock()
		if inc, ok := g.departed[m.ID]; ok && inc == m.Incarnation {
			// It said it was leaving and has left; the registry
			// has not caught up yet.
			s.mu.Unlock()
			continue
		}
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
	for id, inc := range g.departed {
		if got, ok := listed[id]; !ok || got != inc {
			delete(g.departed, id)
		}
	}
	var gone []*remote
	for id, r := range g.servers {
		if _, ok := listed[id]; !ok {
			gone = append(gone, r)
		}
	}
	s.mu.Unlock()
	for _, r := range gone {
		r.evMu.Lock()
		was := r.inRegistry
		r.inRegistry = false
		if was && g.dir == plugins.Upstream && r.link.Load() == nil {
			// Not dialled any more. With a link up, the dialer
			// ends with the link (dialLoop checks inRegistry).
			r.stopDialer()
		}
		r.maybeLeftLocked()
		r.evMu.Unlock()
	}
}
