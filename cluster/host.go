package cluster

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/plugins/extension"
	"github.com/cloudrift/cloudrift/protocol"
)

// host is the Host handed to one plugin: a plugins.Host that is also an
// extension.Host.
type host struct {
	s    *Server
	log  zerolog.Logger
	slot *pluginSlot // nil for the embedder's Host
}

var _ extension.Host = (*host)(nil)

func (h *host) System() string          { return h.s.sys.System }
func (h *host) Group() string           { return h.s.group.Name }
func (h *host) ServerID() string        { return h.s.id }
func (h *host) Logger() *zerolog.Logger { return &h.log }

func (h *host) RemoteGroup(name string) (plugins.RemoteGroup, error) {
	if g, ok := h.s.related[name]; ok {
		return g, nil
	}
	if _, ok := h.s.sys.Group(name); !ok {
		return nil, fmt.Errorf("%w: %q is not a group of system %q", plugins.ErrUnknownGroup, name, h.s.sys.System)
	}
	if name == h.s.group.Name {
		return nil, fmt.Errorf("%w: %q is this server's own group; servers of one group never talk directly", plugins.ErrUnrelatedGroup, name)
	}
	return nil, fmt.Errorf("%w: group %q neither connects to nor is connected to by group %q", plugins.ErrUnrelatedGroup, name, h.s.group.Name)
}

func (h *host) RemoteGroups() []plugins.RemoteGroup {
	gs := h.s.sortedRelated()
	out := make([]plugins.RemoteGroup, len(gs))
	for i, g := range gs {
		out[i] = g
	}
	return out
}

func (h *host) SendToClient(ref plugins.ClientRef, tag uint16, payload []byte) error {
	return h.s.sendToClient(ref, tag, payload)
}

func (h *host) SendToClients(refs []plugins.ClientRef, tag uint16, payload []byte) error {
	return h.s.sendToClients(refs, tag, payload)
}

func (h *host) Client(id uint64) (plugins.Client, bool) {
	c := h.s.localClient(id)
	if c == nil {
		return nil, false
	}
	return c, true
}

func (h *host) SendFrame(to plugins.RemoteServer, kind protocol.Kind, tag uint16, payload []byte) error {
	r, ok := to.(*remote)
	if !ok {
		return fmt.Errorf("%w: %T is not a server linked to a cloudrift server", plugins.ErrNotConnected, to)
	}
	return r.sendFrame(kind, tag, payload)
}

func (h *host) SendClientFrame(c plugins.Client, kind protocol.Kind, tag uint16, payload []byte) error {
	sc, ok := c.(*session)
	if !ok {
		return fmt.Errorf("%w: %T is not a client of a cloudrift server", plugins.ErrClientGone, c)
	}
	return sc.sendFrame(kind, tag, payload)
}

func (h *host) SendFrameToClient(ref plugins.ClientRef, kind protocol.Kind, tag uint16, payload []byte) error {
	return h.s.sendFrameToClient(ref, kind, tag, payload)
}

func (h *host) SendFrameToClients(refs []plugins.ClientRef, kind protocol.Kind, tag uint16, payload []byte) error {
	return h.s.sendFrameToClients(refs, kind, tag, payload)
}

func (h *host) MaxFramePayload() int { return h.s.maxFramePayload() }

func (h *host) CloudMemory() (plugins.CloudMemory, error) { return h.s.hooks.cloudSession(h.slot) }

func (h *host) FilterCloud(op *plugins.CloudOp) error { return h.s.hooks.filterCloud(op) }

func (h *host) FiltersCloud() bool { return len(h.s.hooks.filters) > 0 }

func (h *host) RecordClientCloudOp(kind plugins.CloudOpKind, start time.Time, code cloud.Code) {
	h.s.clientCloudMeter.recordCode(kind, start, code)
}
