package plugins

import (
	"errors"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/protocol"
)

// Errors returned through the plugin API. The runtime wraps them with
// detail; compare with errors.Is.
var (
	// ErrNotConnected: the remote server has no link up right now.
	ErrNotConnected = errors.New("cloudrift: remote server not connected")
	// ErrUnknownGroup: no group of that name in the system.
	ErrUnknownGroup = errors.New("cloudrift: unknown group")
	// ErrUnrelatedGroup: the group exists but is neither upstream nor
	// downstream of this server's group (its own group included: servers of
	// one group never talk to each other directly).
	ErrUnrelatedGroup = errors.New("cloudrift: group is neither upstream nor downstream")
	// ErrMessageTooLarge: the payload does not fit the link's frame limit.
	ErrMessageTooLarge = errors.New("cloudrift: message too large")
	// ErrBusy: the link's outbound queue (links.queueBytes) is full, so
	// the message was not queued. The link stays up and drains: send again
	// later, or tell whoever asked. Hooks running on a read loop (a game
	// client's ClientMessage, a link's ServerMessage) rarely see it: the
	// runtime pauses the read loop whose send finds a link over half
	// full until it drains; other goroutines get it once the queue is full.
	ErrBusy = errors.New("cloudrift: link busy, outbound queue full")
)

// Direction says who dials whom, seen from this server.
type Direction uint8

const (
	// Upstream: this server's group connects to the remote group; this
	// server dials.
	Upstream Direction = iota + 1
	// Downstream: the remote group connects to this server's group; the
	// remote server dials.
	Downstream
)

func (d Direction) String() string {
	switch d {
	case Upstream:
		return "upstream"
	case Downstream:
		return "downstream"
	}
	return "unknown"
}

// State is where a remote server is in its life, seen from this server.
type State uint8

const (
	// StateJoined: known (registry or link), no link up yet.
	StateJoined State = iota + 1
	// StateConnected: a link is up; Send works.
	StateConnected
	// StateDisconnected: known, its link went down; a dialer may be
	// reconnecting.
	StateDisconnected
	// StateLeft: gone for good; Send returns ErrNotConnected.
	StateLeft
)

func (s State) String() string {
	switch s {
	case StateJoined:
		return "joined"
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateLeft:
		return "left"
	}
	return "unknown"
}

// RemoteServer is one server of a related group. A RemoteServer value names
// one incarnation: when the same ID restarts, it is a new RemoteServer and the
// old one has left. Methods are safe for concurrent use.
type RemoteServer interface {
	ID() string
	Group() string
	// Incarnation is random per process start of the remote server.
	Incarnation() uint64
	// Address is where the remote server accepts connections, as
	// registered (or, for a downstream server not yet seen in the
	// registry, the address its link came from: "unix:" and the socket
	// path for a link over this host's link socket).
	Address() string
	Direction() Direction
	State() State
	// Send queues a message to the remote server and returns at once; the
	// runtime copies payload. Messages to one remote server arrive in the
	// order they were sent, exactly once, while the link stays up. It
	// returns ErrNotConnected when no link is up, ErrMessageTooLarge, or
	// ErrBusy when the link's outbound queue is full (links.queueBytes):
	// that message is not queued, the link stays up. Send never blocks.
	Send(tag uint16, payload []byte) error
}

// RemoteGroup is a related group, seen from this server.
type RemoteGroup interface {
	Name() string
	Direction() Direction
	// Servers returns the group's servers that have joined and not left,
	// sorted by ID. The slice is the caller's.
	Servers() []RemoteServer
	// Server returns the current incarnation of the server with this ID.
	Server(id string) (RemoteServer, bool)
}

// Host is the API the runtime hands a plugin at Start. The Host of a
// cloudrift server also implements extension.Host, for system extensions.
type Host interface {
	// System, Group and ServerID name this server.
	System() string
	Group() string
	ServerID() string
	// Logger is scoped to the server and the plugin.
	Logger() *zerolog.Logger
	// RemoteGroup returns a group this server links with. It returns an
	// error wrapping ErrUnknownGroup or ErrUnrelatedGroup otherwise.
	RemoteGroup(name string) (RemoteGroup, error)
	// RemoteGroups returns every related group: upstream, then downstream,
	// each sorted by name.
	RemoteGroups() []RemoteGroup

	// SendToClient sends a message to a game client anywhere in the
	// system: directly when this server holds it, otherwise over the link
	// to the external server that does. It returns ErrClientGone for a
	// local client that is gone and ErrNoRoute or ErrNotConnected when the
	// holding server cannot be reached; a remote client found gone is
	// reported later through ClientSendFailed.
	SendToClient(ref ClientRef, tag uint16, payload []byte) error
	// SendToClients sends one message to many clients, one frame per
	// holding server. It tries every ref and returns the errors joined.
	SendToClients(refs []ClientRef, tag uint16, payload []byte) error
	// Client returns a client this server holds.
	Client(id uint64) (Client, bool)

	// CloudMemory returns this plugin's cloud-memory API, or an error
	// wrapping ErrNoCloudMemory when the server's group connects to no
	// cloud-memory group. Every call returns the same session.
	CloudMemory() (CloudMemory, error)
}

// CloseError says why a link or a client session closed. The reason
// ServerDisconnected and ClientDisconnected receive is one.
type CloseError struct {
	// Reason is the close reason code.
	Reason protocol.Reason
	// ByPeer is true when the remote server sent the reason, false when
	// this server decided it.
	ByPeer bool
	// Message is the peer's message or this server's detail.
	Message string
	// Err is the underlying I/O or decode error, if any.
	Err error
}

func (e *CloseError) Error() string {
	who := "closed"
	if e.ByPeer {
		who = "closed by peer"
	}
	s := who + ": " + e.Reason.String()
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *CloseError) Unwrap() error { return e.Err }
