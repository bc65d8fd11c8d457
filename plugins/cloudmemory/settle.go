package cloudmemory

import (
	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
	"github.com/cloudrift/cloudrift/rendezvous"
)

// Readiness of the keys a replica takes over. When the replica set
// changes, the new owner of a key holds none of its rows: their
// uploaders' servers post them again once they see the change. Until
// then a read would be short and look complete. So a replica serves a key
// only when it has owned it under every replica set since the last one
// all its downstream servers confirmed (the settled set): each member of
// a group linking to this replica (joined and not left, or linked) says,
// with SyncRing, that it placed here every row it holds for this
// replica's keys under the current set. A replica that starts has no
// settled set, so it serves nothing before the first confirmation round,
// which needs at least one member (its registry lists of the downstream
// groups may come after its own group's).
// Whenever the set changes, every confirmation is void and the servers
// are asked again (an SrvMoved, empty when nothing of theirs moved).
//
// Keys not ready are refused with cloud.CodeUnavailable, per key: the
// server asks again for those keys until its Get times out, and then
// reports them missing. Posts, releases and subscriptions are accepted
// for every key the replica owns under the current set: that is how the
// rows arrive.

// maxUnsettled bounds the replica sets remembered since the settled one;
// past it the replica forgets the settled set (serving nothing until the
// next confirmation round), which is safe, only slower.
const maxUnsettled = 8

// member is a downstream server that must confirm placement.
type member struct {
	inc  uint64
	ring uint64 // the RingDigest it confirmed last; 0: none since the set changed
}

// keyCodeLocked says whether this replica serves k now: CodeOK, or
// CodeNotOwner, or CodeUnavailable (k's rows may still be arriving).
// s.mu is held.
func (s *Service) keyCodeLocked(k key) cloud.Code {
	self := s.host.ServerID()
	if ownerOf(s.ring, k) != self {
		return cloud.CodeNotOwner
	}
	if len(s.since) == 0 {
		return cloud.CodeOK
	}
	if ownerOf(s.settled, k) != self {
		return cloud.CodeUnavailable
	}
	for _, r := range s.since {
		if ownerOf(r, k) != self {
			return cloud.CodeUnavailable
		}
	}
	return cloud.CodeOK
}

// ringChangedLocked records a new replica set: every confirmation is
// void. s.mu is held (write).
func (s *Service) ringChangedLocked(r rendezvous.Ring) {
	s.ring, s.digest = r, cloudwire.RingDigest(r.IDs())
	s.since = append(s.since, r)
	if len(s.since) > maxUnsettled {
		s.settled, s.since = rendezvous.Ring{}, []rendezvous.Ring{r}
	}
	for _, m := range s.members {
		m.ring = 0
	}
	s.trySettleLocked()
}

// trySettleLocked makes the current set the settled one once every member
// confirmed it. s.mu is held (write).
func (s *Service) trySettleLocked() {
	if len(s.since) == 0 || !s.ready {
		return
	}
	if len(s.members) == 0 && s.settled.Len() == 0 {
		// A replica that never settled and knows no downstream server
		// yet may just not have its first registry lists: it waits for
		// the first server that links (every read comes through one).
		return
	}
	for _, m := range s.members {
		if m.ring != s.digest {
			return
		}
	}
	s.settled, s.since = s.ring, nil
	s.log.Debug().Strs("replicas", s.ring.IDs()).Int("servers", len(s.members)).Msg("cloud replica set settled: serving every key it owns")
}

// memberLocked returns rs's member entry, replacing an older
// incarnation's. s.mu is held (write).
func (s *Service) memberLocked(rs plugins.RemoteServer) *member {
	m := s.members[rs.ID()]
	if m == nil || m.inc != rs.Incarnation() {
		m = &member{inc: rs.Incarnation()}
		s.members[rs.ID()] = m
	}
	return m
}

// ServerJoined implements plugins.ServerJoinedHandler: a downstream server
// is a member until it leaves; it may hold rows for this replica's keys.
func (s *Service) ServerJoined(rs plugins.RemoteServer) error {
	if rs.Direction() != plugins.Downstream {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.memberLocked(rs)
	return nil
}

// confirmed records rs's SyncRing.
func (s *Service) confirmed(rs plugins.RemoteServer, ring uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.memberLocked(rs).ring = ring
	s.trySettleLocked()
}

// forgetMember drops a server that left from the members.
func (s *Service) forgetMember(rs plugins.RemoteServer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.members[rs.ID()]; m != nil && m.inc == rs.Incarnation() {
		delete(s.members, rs.ID())
	}
	s.trySettleLocked()
}

// askConfirmLocked sends every linked downstream server an SrvMoved without
// keys, but those that were sent one with keys (moved): their
// confirmations were voided by a new replica set. s.mu is held.
func (s *Service) askConfirmLocked(moved map[*downstream]bool) {
	empty := (&cloudwire.SrvMoved{}).AppendTo(nil)
	for _, d := range s.servers {
		if d.up && !moved[d] {
			_ = s.host.SendFrame(d.rs, protocol.KindCloudSrvMoved, 0, empty)
		}
	}
}
