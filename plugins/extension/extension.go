// Package extension is the plugin API of system extensions, such as the
// cloud memory (plugins/cloudmemory): plugins that speak a protocol of
// their own between servers and with game clients over the extension
// frame kinds (64–95, protocol.IsExtensionKind), follow the servers of
// their own group, run the CloudFilter hooks of the plugins beside them,
// or serve Host.CloudMemory to them. A game plugin needs none of it:
// package plugins is its whole API.
//
// An extension is a plugin like any other: registered with
// plugins.Register (usually with an Info.Attach, so that it also runs on
// the servers of the groups that connect to its own), with the lifecycle
// and event hooks of package plugins. In Start it gets the extended Host
// with Of:
//
//	func (p *Ext) Start(ctx context.Context, h plugins.Host) error {
//		eh, ok := extension.Of(h)
//		if !ok {
//			return errors.New("ext: the host is not a cloudrift server's")
//		}
//		p.host = eh
//		return nil
//	}
//
// The runtime finds the hooks below, like those of package plugins, by
// type assertion on the plugin value; every one is optional. Their
// concurrency contracts are in their docs.
package extension

import (
	"errors"
	"time"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
)

// ErrFrameKind: a frame kind outside the extension range
// (protocol.FirstExtensionKind to protocol.LastExtensionKind) was given to
// a Host's frame method, or a plugin claims such a kind or one another
// plugin claims.
var ErrFrameKind = errors.New("cloudrift: not an extension frame kind")

// Host is the plugins.Host of a server, with what extensions need besides.
// Methods are safe for concurrent use and never block. The Send methods
// copy payload before they return: the caller may reuse it at once.
type Host interface {
	plugins.Host

	// SendFrame queues a frame of an extension kind (64–95) for the
	// FrameHandler of the remote server to, as to.Send does for plugin
	// messages: in order, exactly once while the link stays up, with the
	// same errors. A kind outside that range returns ErrFrameKind.
	SendFrame(to plugins.RemoteServer, kind protocol.Kind, tag uint16, payload []byte) error
	// SendClientFrame queues a frame of an extension kind to a game client
	// this server holds, as c.Send does; a kind outside that range
	// returns ErrFrameKind.
	SendClientFrame(c plugins.Client, kind protocol.Kind, tag uint16, payload []byte) error
	// SendFrameToClient sends a frame of an extension kind to a game client
	// anywhere in the system, as plugins.Host.SendToClient does for plugin
	// messages; a kind outside that range returns ErrFrameKind.
	SendFrameToClient(ref plugins.ClientRef, kind protocol.Kind, tag uint16, payload []byte) error
	// SendFrameToClients sends one extension-kind frame to many clients;
	// the clients this server holds share one encoded copy. It tries every
	// ref and returns the errors joined.
	SendFrameToClients(refs []plugins.ClientRef, kind protocol.Kind, tag uint16, payload []byte) error
	// MaxFramePayload is the largest payload a link frame may carry.
	MaxFramePayload() int
	// FilterCloud runs the CloudFilter hooks of this server's plugins on
	// op; the first rejection is returned. The cloud memory calls it for
	// every operation it accepts.
	FilterCloud(op *plugins.CloudOp) error
	// FiltersCloud reports whether any plugin of this server has a
	// CloudFilter hook; when none has, FilterCloud accepts every
	// operation and callers may skip building one. It does not change
	// while the server runs.
	FiltersCloud() bool
	// RecordClientCloudOp counts a cloud operation of one of this
	// server's game clients, started at start and answered with code, in
	// the operations port's cloudrift_cloud_operations_total and latency
	// histogram (source "client"). The cloud memory calls it as it answers.
	// It allocates nothing and is safe for concurrent use.
	RecordClientCloudOp(kind plugins.CloudOpKind, start time.Time, code cloud.Code)
}

// Of returns the extension Host behind h, the Host a plugin's Start gets.
// ok is false when h is not a cloudrift server's (a test's fake, say).
func Of(h plugins.Host) (Host, bool) {
	eh, ok := h.(Host)
	return eh, ok
}

// FrameHandler is implemented by a plugin that speaks a system protocol of
// its own over extension kinds, as the cloud memory does. The runtime
// hands it every frame of the kinds it claims: from linked servers
// (ServerFrame, on the link's read loop, in the order the remote server
// sent them) and from this server's game clients (ClientFrame, on the
// client's read goroutine, in order, between ClientConnected and
// ClientDisconnected).
//
// FrameKinds is called once, when the server is created; each kind is
// claimed by at most one plugin of a server (cluster.New fails
// otherwise, with ErrFrameKind). A frame of an extension kind no plugin
// claims closes the link or the client as a protocol error, as any
// unknown kind does.
//
// f.Payload is valid only during the call. A non-nil error (or a panic)
// means the frame was malformed or not allowed from that peer: the runtime
// logs it and closes the link or the client with protocol.ReasonProtocol.
// Handlers must not block: they answer with the Host's SendFrame or
// SendClientFrame, which never do.
type FrameHandler interface {
	FrameKinds() []protocol.Kind
	ServerFrame(s plugins.RemoteServer, f protocol.Frame) error
	ClientFrame(c plugins.Client, f protocol.Frame) error
}

// Peer is a server of this server's own group, as the registry lists it.
type Peer struct {
	ID          string
	Incarnation uint64
	Address     string
}

// PeersHandler learns the membership of this server's own group, as a
// full list sorted by ID: the servers the registry lists in the group,
// debounced, with this server always in it (from Start until it stops,
// whether the registry lists it yet, still, or under an older
// incarnation). Servers of one group never link to each other, so the
// registry is their only witness; this is how they agree on who is there
// (the cloud memory hashes keys over it).
//
// The debounce is the one every membership of the runtime follows
// (docs/ARCHITECTURE.md, "Membership"): a server joins as soon as the
// registry lists it (a new incarnation under a known ID replaces the old
// one at once); it leaves only once the registry has not listed it for
// links.leaveGrace without interruption. A registry answer that drops
// members, all of them included (an agent restart, a catalog flap), and
// lists them again within the grace changes nothing.
//
// Servers of a group downstream of this one see this group's servers as
// upstream RemoteServers, whose lifecycle follows the same registry and the
// same grace: ServerJoined when listed, ServerLeft once unlisted for
// links.leaveGrace with the link down. Plugins that place work by that
// lifecycle therefore agree with this list, but for two cases where the
// link knows more than the registry: a live link keeps an upstream server
// joined however long the registry drops it, and a server that says it is
// leaving (graceful shutdown) goes Left on its links at once. Here it goes
// at once too when the registry listed it as leaving
// (registry.MetaLeaving, which a server shutting down sets when its
// connector is a registry.Updater); otherwise only once the grace after
// its deregistration has passed.
//
// Calls are serialized, on a goroutine of the runtime's, and made only when
// the list changes; the first comes soon after Start.
type PeersHandler interface {
	PeersChanged(peers []Peer) error
}

// CloudMemoryProvider is implemented by the cloud memory's caller side:
// plugins.Host.CloudMemory returns a session of the first plugin of the
// server that implements it, made on the plugin's first call.
type CloudMemoryProvider interface {
	// CloudSession returns the CloudMemory of one plugin, called name in
	// logs. Its subscriptions' notifications go to notify (nil: dropped),
	// called as plugins.CloudNotificationHandler documents.
	CloudSession(name string, notify func(cloud.Notification)) plugins.CloudMemory
}
