package cluster

import (
	"errors"
	"fmt"
	"runtime/debug"

	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/registry"
)

// Extension kinds (64–95): frames a plugin's FrameHandler claims, between
// servers (over links) and between an external server and its game
// clients; KindClientFrame carries one to a client held by another
// server. This file also hosts the cloud-memory client and the own-group
// membership that plugins see through PeersHandler.

func checkExtensionKind(kind protocol.Kind) error {
	if !protocol.IsExtensionKind(kind) {
		return fmt.Errorf("%w: %s", plugins.ErrFrameKind, kind)
	}
	return nil
}

// SendFrame implements plugins.RemoteServer.
func (r *remote) SendFrame(kind protocol.Kind, tag uint16, payload []byte) error {
	if err := checkExtensionKind(kind); err != nil {
		return err
	}
	l := r.link.Load()
	if l == nil {
		return fmt.Errorf("%w: %s (%s)", plugins.ErrNotConnected, r.id, r.State())
	}
	return l.send(kind, tag, payload)
}

// SendFrame implements plugins.Client.
func (c *client) SendFrame(kind protocol.Kind, tag uint16, payload []byte) error {
	if err := checkExtensionKind(kind); err != nil {
		return err
	}
	return c.enqueue(protocol.AppendWS(make([]byte, 0, protocol.WSHeaderSize+len(payload)), kind, tag, payload))
}

// sendFrameToClient implements plugins.Host.SendFrameToClient.
func (s *Server) sendFrameToClient(ref plugins.ClientRef, kind protocol.Kind, tag uint16, payload []byte) error {
	if err := checkExtensionKind(kind); err != nil {
		return err
	}
	if ref.Server == s.id {
		c := s.localClient(ref.ID)
		if c == nil {
			return fmt.Errorf("%w: %s", plugins.ErrClientGone, ref)
		}
		return c.SendFrame(kind, tag, payload)
	}
	l, err := s.routeTo(ref.Server)
	if err != nil {
		return err
	}
	var head [9]byte
	return l.send2(protocol.KindClientFrame, tag, protocol.AppendClientFrame(head[:0], ref.ID, kind, nil), payload)
}

// sendFrameToClients implements plugins.Host.SendFrameToClients: local
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
	if c := s.localClient(id); c == nil || c.SendFrame(kind, f.Tag, payload) != nil {
		return id, true, nil
	}
	return 0, false, nil
}

// frameHook returns the handler of an extension kind, or nil.
func (hs *hookSet) frameHook(k protocol.Kind) *hook[plugins.FrameHandler] {
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
func (hs *hookSet) clientFrame(c *client, f protocol.Frame) error {
	h := hs.frameHook(f.Kind)
	if h == nil {
		return fmt.Errorf("unexpected message kind %s from a client", f.Kind)
	}
	return hs.frameCall(h, "ClientFrame", func() error { return h.h.ClientFrame(c, f) })
}

// frameCall runs a frame hook; a panic is logged, counted and returned as
// an error.
func (hs *hookSet) frameCall(h *hook[plugins.FrameHandler], name string, f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			hs.s.hookPanics.Add(1)
			h.slot.log.Error().Str("hook", name).Interface("panic", v).Bytes("stack", debug.Stack()).Msg("plugin hook panicked")
			err = fmt.Errorf("plugin %q: %s panicked: %v", h.slot.name, name, v)
		}
	}()
	return f()
}

// filterCloud runs every CloudFilter; the first rejection wins and a
// panic rejects.
func (hs *hookSet) filterCloud(op *plugins.CloudOp) error {
	for _, h := range hs.filters {
		var refusal error
		err := hs.call(h.slot, "FilterCloud", func() error {
			refusal = h.h.FilterCloud(op)
			return nil
		})
		if err != nil {
			return errors.New("query filter failed")
		}
		if refusal != nil {
			return refusal
		}
	}
	return nil
}

// cloudSession returns slot's cloud-memory session, making it on first
// use. slot is nil for the embedder's Host.
func (hs *hookSet) cloudSession(slot *pluginSlot) (plugins.CloudMemory, error) {
	if hs.cloud == nil {
		return nil, fmt.Errorf("%w: group %q connects to no group running %q",
			plugins.ErrNoCloudMemory, hs.s.group.Name, plugins.CloudMemoryPlugin)
	}
	if slot == nil {
		hs.embedOnce.Do(func() { hs.embedCloud = hs.cloud.CloudSession("embedder", nil) })
		return hs.embedCloud, nil
	}
	slot.cloudOnce.Do(func() {
		var notify func(cloud.Notification)
		if h, ok := slot.p.(plugins.CloudNotificationHandler); ok {
			notify = func(n cloud.Notification) {
				_ = hs.call(slot, "CloudNotification", func() error { return h.CloudNotification(n) })
			}
		}
		slot.cloud = hs.cloud.CloudSession(slot.name, notify)
	})
	return slot.cloud, nil
}

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
			peers := make([]plugins.Peer, 0, len(ms))
			for _, m := range ms {
				if m.Group == s.group.Name {
					peers = append(peers, plugins.Peer{ID: m.ID, Incarnation: m.Incarnation, Address: m.Address})
				}
			}
			for _, h := range s.hooks.onPeers {
				_ = s.hooks.call(h.slot, "PeersChanged", func() error { return h.h.PeersChanged(peers) })
			}
		}
	}
}

// withCloudClient adds the cloud-memory client, first, to the plugins of a
// server whose group connects to a group running the cloud memory (unless
// a plugin already provides one). The client's settings are the cloud
// plugin's, under "settings", with the cloud group's name under "group".
func (s *Server) withCloudClient(ps []plugins.Plugin, names []string) ([]plugins.Plugin, []string, error) {
	for _, p := range ps {
		if _, ok := p.(plugins.CloudMemoryProvider); ok {
			return ps, names, nil
		}
	}
	var clouds []string
	var spec plugins.Spec
	for _, up := range s.topo.Upstream(s.group.Name) {
		g, _ := s.sys.Group(up)
		for _, p := range g.Plugins {
			if p.Name != plugins.CloudMemoryPlugin {
				continue
			}
			clouds = append(clouds, up)
			settings := yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: p.Line, Content: []*yaml.Node{
				{Kind: yaml.ScalarNode, Tag: "!!str", Value: "group", Line: p.Line},
				{Kind: yaml.ScalarNode, Tag: "!!str", Value: up, Line: p.Line},
			}}
			if n := p.Settings; n.Kind != 0 && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
				settings.Content = append(settings.Content,
					&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "settings", Line: n.Line}, &n)
			}
			spec = plugins.Spec{Name: plugins.CloudMemoryClientPlugin, Settings: settings, File: s.sys.File, Line: p.Line}
		}
	}
	switch len(clouds) {
	case 0:
		return ps, names, nil
	case 1:
	default:
		return nil, nil, fmt.Errorf("%w: group %q connects to %d cloud-memory groups (%v); connect to one",
			ErrBadOptions, s.group.Name, len(clouds), clouds)
	}
	p, err := plugins.Provision(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: cloud-memory client for group %q (cloud group %q): %w", s.group.Name, clouds[0], err)
	}
	return append([]plugins.Plugin{p}, ps...), append([]string{plugins.CloudMemoryClientPlugin}, names...), nil
}
