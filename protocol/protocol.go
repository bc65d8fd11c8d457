// Package protocol is the wire format of cloudrift: server-link frames, the
// link handshake, and close reasons. It is pure: it encodes and decodes bytes
// and never decides policy. No decoder panics or allocates more than the frame
// limit on any input.
//
// A link frame is
//
//	u32 length | u8 kind | u16 tag | payload
//
// big-endian, where length counts kind, tag and payload (so it is at least 3).
package protocol

import (
	"errors"
	"fmt"

	"github.com/cloudrift/cloudrift/protocol/internal/wire"
)

// Version is the link protocol version carried in the handshake. Version 2
// moved the acceptor's MAC from Challenge to Welcome.
const Version uint16 = 2

// HeaderSize is the size of a frame header: length, kind and tag.
const HeaderSize = 7

// DefaultMaxFrame is the default limit on a frame's length field.
const DefaultMaxFrame = 1 << 20

// Kind separates system frames from user (plugin) frames.
type Kind uint8

// Frame kinds. Kinds 32–63 are reserved for client envelopes and 64–95 for
// extension kinds (cloud-memory operations, see cloud.go); a receiver closes
// a link that sends a kind it does not know.
const (
	KindHello     Kind = 1  // dialer → acceptor: Hello
	KindChallenge Kind = 2  // acceptor → dialer: Challenge
	KindAuth      Kind = 3  // dialer → acceptor: Auth
	KindWelcome   Kind = 4  // acceptor → dialer: Welcome, the link is up
	KindClose     Kind = 5  // either side: Close, then the connection ends
	KindPing      Kind = 6  // either side: keepalive, answered by KindPong
	KindPong      Kind = 7  // answer to KindPing
	KindLeaving   Kind = 8  // either side: sender is shutting down gracefully
	KindUser      Kind = 16 // plugin message; Tag is the plugin's tag

	// Client kinds. On a game client's WebSocket, KindUser carries plugin
	// messages both ways, KindClose ends the session with a reason, and
	// the server greets the client with KindClientWelcome. On server links
	// the others route messages to clients held by external servers.
	KindClientWelcome Kind = 32 // server → client: ClientWelcome
	KindClientSend    Kind = 33 // link: ClientSend, to one client the receiver holds
	KindClientMulti   Kind = 34 // link: ClientMulti, to many clients the receiver holds
	KindClientGone    Kind = 35 // link: ClientGone, answer naming clients that are gone

	// KindClientMove (server → client, tag 0) asks a game client to connect
	// to another server of the group: the sender is draining. It shares
	// its number with KindClientSend, which exists only on server links;
	// on a client's WebSocket 33 is always Move (see ClientKindString).
	KindClientMove Kind = 33
)

func (k Kind) String() string {
	switch k {
	case KindHello:
		return "hello"
	case KindChallenge:
		return "challenge"
	case KindAuth:
		return "auth"
	case KindWelcome:
		return "welcome"
	case KindClose:
		return "close"
	case KindPing:
		return "ping"
	case KindPong:
		return "pong"
	case KindLeaving:
		return "leaving"
	case KindUser:
		return "user"
	case KindClientWelcome:
		return "client-welcome"
	case KindClientSend:
		return "client-send"
	case KindClientMulti:
		return "client-multi"
	case KindClientGone:
		return "client-gone"
	case KindClientFrame:
		return "client-frame"
	}
	if name, ok := cloudKindNames[k]; ok {
		return name
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ClientKindString names k as it reads on a game client's WebSocket, where
// kind 33 is Move; String names kinds as they read on server links.
func ClientKindString(k Kind) string {
	if k == KindClientMove {
		return "client-move"
	}
	return k.String()
}

// Reason says why a link or connection was closed. It travels in Close
// frames and is logged by both sides.
type Reason uint16

// Close reasons.
const (
	ReasonNone             Reason = 0  // no reason given
	ReasonShutdown         Reason = 1  // the sender is shutting down
	ReasonProtocol         Reason = 2  // malformed frame or unexpected kind
	ReasonFrameTooLarge    Reason = 3  // a frame's length exceeds the limit
	ReasonAuth             Reason = 4  // handshake MAC did not verify: wrong secret
	ReasonWrongSystem      Reason = 5  // the peer belongs to another system
	ReasonNotDownstream    Reason = 6  // the dialer's group does not connect to the acceptor's
	ReasonVersion          Reason = 7  // unsupported protocol version
	ReasonHandshakeTimeout Reason = 8  // the handshake did not finish in time
	ReasonHeartbeatTimeout Reason = 9  // the peer was silent past the timeout
	ReasonSlowPeer         Reason = 10 // the outbound queue overflowed (no longer sent: a full queue refuses sends instead; kept for peers that do)
	ReasonReplaced         Reason = 11 // a newer link to the same server replaced this one
	ReasonClientProtocol   Reason = 12 // a client protocol (HTTP, WebSocket) reached a server port
	ReasonPeerLeft         Reason = 13 // the registry no longer lists the peer (cloudrift no longer sends it: a live link outranks the registry)
	ReasonIO               Reason = 14 // the connection failed (reset, EOF)
	ReasonUnknownPeer      Reason = 15 // the acceptor's identity did not match the dialed member
	ReasonWriteStalled     Reason = 24 // a write to the peer made no progress for the link timeout

	// Client reasons: sent to a game client in a Close before it is
	// disconnected.
	ReasonMessageTooLarge Reason = 16 // a client message exceeded the size limit
	ReasonRateLimited     Reason = 17 // a client sent faster than its rate limit
	ReasonServerFull      Reason = 18 // the server holds its maximum of clients (on a link port: of handshakes)
	ReasonReadTimeout     Reason = 19 // the client was silent past the read deadline
	ReasonSlowClient      Reason = 20 // the client's send queue overflowed
	ReasonAuthRefused     Reason = 21 // a plugin refused the client at connect
	ReasonKicked          Reason = 22 // a plugin closed the client
	ReasonWriteTimeout    Reason = 23 // a write to the client did not finish in time
	ReasonDraining        Reason = 25 // the server drained and its drain timeout passed: connect to another server of the group
)

var reasonNames = [...]string{
	ReasonNone:             "none",
	ReasonShutdown:         "shutdown",
	ReasonProtocol:         "protocol error",
	ReasonFrameTooLarge:    "frame too large",
	ReasonAuth:             "authentication failed",
	ReasonWrongSystem:      "wrong system",
	ReasonNotDownstream:    "group not allowed to connect",
	ReasonVersion:          "unsupported version",
	ReasonHandshakeTimeout: "handshake timeout",
	ReasonHeartbeatTimeout: "heartbeat timeout",
	ReasonSlowPeer:         "slow peer",
	ReasonReplaced:         "replaced by a newer link",
	ReasonClientProtocol:   "client protocol on a server port",
	ReasonPeerLeft:         "peer left the registry",
	ReasonIO:               "connection failed",
	ReasonUnknownPeer:      "unexpected peer identity",
	ReasonMessageTooLarge:  "message too large",
	ReasonRateLimited:      "rate limited",
	ReasonServerFull:       "server full",
	ReasonReadTimeout:      "read timeout",
	ReasonSlowClient:       "slow client",
	ReasonAuthRefused:      "authentication refused",
	ReasonKicked:           "kicked",
	ReasonWriteTimeout:     "write timeout",
	ReasonWriteStalled:     "write stalled",
	ReasonDraining:         "draining",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint16(r))
}

// Frame is one decoded frame. Payload aliases the decoder's buffer unless
// the decoder's documentation says otherwise.
type Frame struct {
	Kind    Kind
	Tag     uint16
	Payload []byte
}

// Sentinel errors. Decoders wrap them with detail; compare with errors.Is.
var (
	// ErrFrameTooLarge: a frame's length field exceeds the limit.
	ErrFrameTooLarge = errors.New("protocol: frame too large")
	// ErrShortFrame: a frame's length field is below 3 (kind and tag).
	ErrShortFrame = errors.New("protocol: frame shorter than its header")
	// ErrMalformed: a handshake or system payload does not decode.
	ErrMalformed = wire.ErrMalformed
)
