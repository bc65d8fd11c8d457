package cluster

import (
	"slices"
	"strings"

	"github.com/cloudrift/cloudrift/plugins/extension"
	"github.com/cloudrift/cloudrift/registry"
)

// peersLoop reports the membership of this server's own group to the
// PeersHandler hooks until the watch ends, as extension.PeersHandler
// documents: debounced by a roster of links.leaveGrace (roster.go), with
// this server always in it, and only when the list changes.
func (s *Server) peersLoop(ch <-chan []registry.Member) {
	var last []extension.Peer
	reported := false
	s.followRegistry("own group "+s.group.Name, ch, func(ms []registry.Member) {
		peers := s.ownPeers(ms)
		if reported && slices.Equal(peers, last) {
			return
		}
		last, reported = peers, true
		for _, h := range s.hooks.onPeers {
			_ = s.hooks.call(h.slot, "PeersChanged", func() error { return h.h.PeersChanged(slices.Clone(peers)) })
		}
	})
}

// ownPeers returns the peers of the own group in ms, sorted by ID, with
// this server in, as it runs (an entry under its ID that the registry
// still holds from an earlier incarnation is replaced).
func (s *Server) ownPeers(ms []registry.Member) []extension.Peer {
	self := extension.Peer{ID: s.id, Incarnation: s.incarnation, Address: s.advertised}
	peers := make([]extension.Peer, 0, len(ms)+1)
	for _, m := range ms {
		if m.Group == s.group.Name && m.ID != s.id {
			peers = append(peers, extension.Peer{ID: m.ID, Incarnation: m.Incarnation, Address: m.Address})
		}
	}
	i, _ := slices.BinarySearchFunc(peers, self.ID, func(p extension.Peer, id string) int { return strings.Compare(p.ID, id) })
	return slices.Insert(peers, i, self)
}
