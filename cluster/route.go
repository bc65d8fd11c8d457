package cluster

import (
	"errors"
	"fmt"

	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
)

// Routing to game clients: a message for a ClientRef held by another
// server travels over the link to that server in a KindClientSend or
// KindClientMulti frame; the holder answers KindClientGone for clients it
// no longer has.

// remoteByID returns the current incarnation of a related server.
func (s *Server) remoteByID(id string) *remote {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.related {
		if r, ok := g.servers[id]; ok {
			return r
		}
	}
	return nil
}

// sendToClient implements plugins.Host.SendToClient.
func (s *Server) sendToClient(ref plugins.ClientRef, tag uint16, payload []byte) error {
	if ref.Server == s.id {
		c := s.localClient(ref.ID)
		if c == nil {
			return fmt.Errorf("%w: %s", plugins.ErrClientGone, ref)
		}
		return c.Send(tag, payload)
	}
	l, err := s.routeTo(ref.Server)
	if err != nil {
		return err
	}
	var head [8]byte
	return l.sendPrefixed(protocol.KindClientSend, tag, protocol.AppendClientSend(head[:0], ref.ID, nil), payload)
}

// routeTo returns the link to the external server id.
func (s *Server) routeTo(id string) (*link, error) {
	r := s.remoteByID(id)
	if r == nil {
		return nil, fmt.Errorf("%w: %s", plugins.ErrNoRoute, id)
	}
	l := r.link.Load()
	if l == nil {
		return nil, fmt.Errorf("%w: %s", plugins.ErrNotConnected, id)
	}
	return l, nil
}

// sendToClients implements plugins.Host.SendToClients: one frame per
// holding server (more when the IDs do not fit one frame).
func (s *Server) sendToClients(refs []plugins.ClientRef, tag uint16, payload []byte) error {
	byServer := make(map[string][]uint64)
	var order []string
	for _, ref := range refs {
		if _, ok := byServer[ref.Server]; !ok {
			order = append(order, ref.Server)
		}
		byServer[ref.Server] = append(byServer[ref.Server], ref.ID)
	}
	var errs []error
	for _, srv := range order {
		ids := byServer[srv]
		if srv == s.id {
			for _, id := range ids {
				if err := s.sendToClient(plugins.ClientRef{Server: srv, ID: id}, tag, payload); err != nil {
					errs = append(errs, err)
				}
			}
			continue
		}
		l, err := s.routeTo(srv)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// Each frame holds as many IDs as fit beside the payload, after
		// the u16 count that leads the ID list.
		per := (s.maxFramePayload() - 2 - len(payload)) / 8
		per = min(per, protocol.MaxClientsPerFrame)
		if per < 1 {
			errs = append(errs, fmt.Errorf("%w: %d bytes to many clients", plugins.ErrMessageTooLarge, len(payload)))
			continue
		}
		for len(ids) > 0 {
			n := min(per, len(ids))
			head := protocol.AppendClientMulti(make([]byte, 0, 2+8*n), ids[:n], nil)
			if err := l.sendPrefixed(protocol.KindClientMulti, tag, head, payload); err != nil {
				errs = append(errs, err)
				break
			}
			ids = ids[n:]
		}
	}
	return errors.Join(errs...)
}

func (s *Server) localClient(id uint64) *session {
	if s.clients == nil {
		return nil
	}
	return s.clients.lookup(id)
}

// clientFrame handles a routing frame received on link l. ids is a reused
// scratch slice; the extended slice is returned for reuse.
func (l *link) clientFrame(f protocol.Frame, ids []uint64) ([]uint64, error) {
	s := l.s
	ids = ids[:0]
	switch f.Kind {
	case protocol.KindClientSend:
		id, payload, err := protocol.DecodeClientSend(f.Payload)
		if err != nil {
			return ids, err
		}
		if c := s.localClient(id); c == nil || c.Send(f.Tag, payload) != nil {
			ids = append(ids, id)
		}
	case protocol.KindClientMulti:
		all, payload, err := protocol.DecodeClientMulti(f.Payload, ids)
		if err != nil {
			return all, err
		}
		gone := all[:0]
		var msg []byte
		for _, id := range all {
			c := s.localClient(id)
			if c == nil {
				gone = append(gone, id)
				continue
			}
			if msg == nil {
				msg = protocol.AppendWS(make([]byte, 0, protocol.WSHeaderSize+len(payload)), protocol.KindUser, f.Tag, payload)
			}
			// One encoded message shared by every local recipient: the
			// writer only reads it.
			if c.enqueue(msg) != nil {
				gone = append(gone, id)
			}
		}
		ids = gone
	case protocol.KindClientFrame:
		id, gone, err := s.clientFrameOverLink(f)
		if err != nil {
			return ids, err
		}
		if gone {
			ids = append(ids, id)
		}
	case protocol.KindClientGone:
		gone, err := protocol.DecodeClientGone(f.Payload, ids)
		if err != nil {
			return gone, err
		}
		for _, id := range gone {
			ref := plugins.ClientRef{Server: l.r.id, ID: id}
			s.hooks.clientSendFailed(ref, fmt.Errorf("%w: %s", plugins.ErrClientGone, ref))
		}
		return gone, nil
	}
	if len(ids) > 0 {
		l.send(protocol.KindClientGone, 0, protocol.AppendClientGone(nil, ids))
	}
	return ids, nil
}
