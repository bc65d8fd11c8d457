package plugins

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/cloudrift/cloudrift/protocol"
)

// ClientRef is the system-wide address of a game client: the external
// server holding it and its ID there. Any server may send to a ClientRef.
type ClientRef = protocol.ClientRef

// Client errors; compare with errors.Is.
var (
	// ErrClientGone: no client with that ref is connected (it left, or its
	// server is gone).
	ErrClientGone = errors.New("cloudrift: client gone")
	// ErrNoRoute: this server has no link to the external server that
	// holds the client (its group is not related to this server's).
	ErrNoRoute = errors.New("cloudrift: no link to the client's server")
)

// ClientInfo describes a game client asking to connect, for
// Authenticate. Header and Query come from the WebSocket upgrade request,
// where games put their tokens.
type ClientInfo struct {
	Ref        ClientRef
	RemoteAddr string
	Header     http.Header
	Query      url.Values
}

// Client is a game client connected to this (external) server. Methods are
// safe for concurrent use.
type Client interface {
	Ref() ClientRef
	RemoteAddr() string
	// Info is what Authenticate saw of the client: its ref, address, and
	// the upgrade request's header and query (tokens, names, options), so
	// later hooks need not keep state between Authenticate and
	// ClientConnected. The caller must not modify it.
	Info() ClientInfo
	// Send queues a message to the client and returns at once; the runtime
	// copies payload. It returns ErrClientGone once the client is gone. A
	// client whose queue overflows is disconnected as slow.
	Send(tag uint16, payload []byte) error
	// Kick disconnects the client with protocol.ReasonKicked and the given
	// message, which the client sees.
	Kick(message string)
}

// ClientAuthenticator decides whether a client may connect. It runs before
// ClientConnected, on the client's own goroutine; a non-nil error refuses
// the client, which sees protocol.ReasonAuthRefused with the error's text.
type ClientAuthenticator interface {
	Authenticate(info ClientInfo) error
}

// ClientConnectedHandler learns of a client that passed authentication.
//
// For one client, ClientConnected, ClientMessage and ClientDisconnected run
// one at a time on the client's read goroutine, in that order: messages
// from one client reach plugins in the order it sent them. Hooks of
// different clients run concurrently.
type ClientConnectedHandler interface {
	ClientConnected(c Client) error
}

// ClientMessageHandler receives a client's messages. m.Payload is only
// valid until the hook returns.
type ClientMessageHandler interface {
	ClientMessage(c Client, m Message) error
}

// ClientDisconnectedHandler learns that a client is gone, and why: reason
// is a *CloseError whose Reason says which limit, plugin or failure ended it.
type ClientDisconnectedHandler interface {
	ClientDisconnected(c Client, reason error) error
}

// ClientSendFailedHandler learns that a message sent with SendToClient or
// SendToClients to a client on another server could not be delivered
// (err wraps ErrClientGone). Sends to local clients report synchronously
// instead.
type ClientSendFailedHandler interface {
	ClientSendFailed(ref ClientRef, err error) error
}
