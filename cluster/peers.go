package cluster

import (
	"github.com/cloudrift/cloudrift/plugins/extension"
	"github.com/cloudrift/cloudrift/registry"
)

// peersLoop reports the registry's view of this server's own group to the
// PeersHandler hooks until the watch ends.
func (s *Server) peersLoop(ch <-chan []registry.Member) {
	for {
		select {
		case <-s.ctx.Done():
			return
		case ms, ok := <-ch:
			if !ok || !s.running() {
				return
			}
			peers := make([]extension.Peer, 0, len(ms))
			for _, m := range ms {
				if m.Group == s.group.Name {
					peers = append(peers, extension.Peer{ID: m.ID, Incarnation: m.Incarnation, Address: m.Address})
				}
			}
			for _, h := range s.hooks.onPeers {
				_ = s.hooks.call(h.slot, "PeersChanged", func() error { return h.h.PeersChanged(peers) })
			}
		}
	}
}
