package plugins

import (
	"errors"

	"github.com/cloudrift/cloudrift/protocol"
)

// ErrFrameKind: a frame kind outside the extension range
// (protocol.FirstExtensionKind to protocol.LastExtensionKind) was given to
// SendFrame, or a plugin claims such a kind or one another plugin claims.
var ErrFrameKind = errors.New("cloudrift: not an extension frame kind")

// FrameHandler is implemented by a plugin that speaks a system protocol of
// its own over extension kinds (64–95, see protocol.IsExtensionKind), as
// the cloud memory does. The runtime hands it every frame of the kinds it
// claims: from linked servers (ServerFrame, on the link's read loop, in
// the order the remote server sent them) and from this server's game
// clients (ClientFrame, on the client's read goroutine, in order, between
// ClientConnected and ClientDisconnected).
//
// FrameKinds is called once, when the server is created; each kind is
// claimed by at most one plugin of a server (cluster.New fails
// otherwise). A frame of an extension kind no plugin claims closes the
// link or the client as a protocol error, as any unknown kind does.
//
// f.Payload is valid only during the call. A non-nil error (or a panic)
// means the frame was malformed or not allowed from that peer: the runtime
// logs it and closes the link or the client with protocol.ReasonProtocol.
// Handlers must not block: they answer with SendFrame, which never does.
type FrameHandler interface {
	FrameKinds() []protocol.Kind
	ServerFrame(s RemoteServer, f protocol.Frame) error
	ClientFrame(c Client, f protocol.Frame) error
}

// Peer is a server of this server's own group, as the registry lists it.
type Peer struct {
	ID          string
	Incarnation uint64
	Address     string
}

// PeersHandler learns the servers of this server's own group (itself
// included once registered) each time the registry's list changes, as a
// full sorted list. Servers of one group never link to each other; this
// is how they agree on who is there (the cloud memory hashes keys over
// it). Calls are serialized; the first comes soon after Start.
type PeersHandler interface {
	PeersChanged(peers []Peer) error
}
