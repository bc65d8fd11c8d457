package cluster

import (
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/plugins/extension"
	"github.com/cloudrift/cloudrift/protocol"
)

// Extension kinds (64–95): frames a plugin's FrameHandler claims, between
// servers (over links) and between an external server and its game
// clients; KindClientFrame carries one to a client held by another
// server.

func checkExtensionKind(kind protocol.Kind) error {
	if !protocol.IsExtensionKind(kind) {
		return fmt.Errorf("%w: %s", extension.ErrFrameKind, kind)
	}
	return nil
}

// sendFrame sends an extension-kind frame over r's link
// (extension.Host.SendFrame).
func (r *remote) sendFrame(kind protocol.Kind, tag uint16, payload []byte) error {
	if err := checkExtensionKind(kind); err != nil {
		return err
	}
	l := r.link.Load()
	if l == nil {
		return fmt.Errorf("%w: %s (%s)", plugins.ErrNotConnected, r.id, r.State())
	}
	return l.send(kind, tag, payload)
}

// sendFrame queues an extension-kind frame to the client
// (extension.Host.SendClientFrame).
func (c *session) sendFrame(kind protocol.Kind, tag uint16, payload []byte) error {
	if err := checkExtensionKind(kind); err != nil {
		return err
	}
	return c.enqueue(protocol.AppendWS(make([]byte, 0, protocol.WSHeaderSize+len(payload)), kind, tag, payload))
}

// sendFrameToClient implements extension.Host.SendFrameToClient.
func (s *Server) sendFrameToClient(ref plugins.ClientRef, kind protocol.Kind, tag uint16, payload []byte) error {
	if err := checkExtensionKind(kind); err != nil {
		return err
	}
	if ref.Server == s.id {
		c := s.localClient(ref.ID)
		if c == nil {
			return fmt.Errorf("%w: %s", plugins.ErrClientGone, ref)
		}
		return c.sendFrame(kind, tag, payload)
	}
	l, err := s.routeTo(ref.Server)
	if err != nil {
		return err
	}
	var head [9]byte
	return l.sendPrefixed(protocol.KindClientFrame, tag, protocol.AppendClientFrame(head[:0], ref.ID, kind, nil), payload)
}

// sendFrameToClients implements extension.Host.SendFrameToClients: local
// clients share one encoded message, remote ones get a frame each.
func (s *Server) sendFrameToClients(refs []plugins.ClientRef, kind protocol.Kind, tag uint16, payload []byte) error {
	if err := checkExtensionKind(kind); err != nil {
		return err
	}
	var msg []byte
	var errs []error
	for _, ref := range refs {
		if ref.Server != s.id {
			if err := s.sendFrameToClient(ref, kind, tag, payload); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		c := s.localClient(ref.ID)
		if c == nil {
			errs = append(errs, fmt.Errorf("%w: %s", plugins.ErrClientGone, ref))
			continue
		}
		if msg == nil {
			msg = protocol.AppendWS(make([]byte, 0, protocol.WSHeaderSize+len(payload)), kind, tag, payload)
		}
		// The writer only reads the shared message.
		if err := c.enqueue(msg); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// clientFrameOverLink delivers a KindClientFrame received on a link. It
// returns the client ID when the client is gone.
func (s *Server) clientFrameOverLink(f protocol.Frame) (gone uint64, ok bool, err error) {
	id, kind, payload, err := protocol.DecodeClientFrame(f.Payload)
	if err != nil {
		return 0, false, err
	}
	if c := s.localClient(id); c == nil || c.sendFrame(kind, f.Tag, payload) != nil {
		return id, true, nil
	}
	return 0, false, nil
}

// frameHook returns the handler of an extension kind, or nil.
func (hs *hookSet) frameHook(k protocol.Kind) *hook[extension.FrameHandler] {
	if !protocol.IsExtensionKind(k) {
		return nil
	}
	return hs.frames[k-protocol.FirstExtensionKind]
}

// serverFrame hands an extension-kind frame from a linked server to its
// handler. An error means the link must close as a protocol error.
func (hs *hookSet) serverFrame(r *remote, f protocol.Frame) error {
	h := hs.frameHook(f.Kind)
	if h == nil {
		return fmt.Errorf("unexpected frame kind %s on a link", f.Kind)
	}
	return hs.frameCall(h, "ServerFrame", func() error { return h.h.ServerFrame(r, f) })
}

// clientFrame hands an extension-kind message from a game client to its
// handler. An error means the client must be closed as a protocol error.
func (hs *hookSet) clientFrame(c *session, f protocol.Frame) error {
	h := hs.frameHook(f.Kind)
	if h == nil {
		return fmt.Errorf("unexpected message kind %s from a client", f.Kind)
	}
	return hs.frameCall(h, "ClientFrame", func() error { return h.h.ClientFrame(c, f) })
}

// frameCall runs a frame hook; a panic is logged, counted and returned as
// an error.
func (hs *hookSet) frameCall(h *hook[extension.FrameHandler], name string, f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			hs.failed(h.slot, name, true)
			h.slot.log.Error().Str("hook", name).Interface("panic", v).Bytes("stack", debug.Stack()).Msg("plugin hook panicked")
			err = fmt.Errorf("plugin %q: %s panicked: %v", h.slot.name, name, v)
		}
	}()
	return f()
}
