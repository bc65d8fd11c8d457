package client

import (
	"errors"
	"fmt"

	"github.com/cloudrift/cloudrift/protocol"
)

// Sentinel errors. Errors returned by this package wrap them; compare with
// errors.Is. The reason sentinels also match a *CloseError carrying the
// corresponding protocol.Reason, so
//
//	errors.Is(c.Err(), client.ErrRateLimited)
//
// is true when the server closed the session for that reason.
var (
	// ErrClosed: the client was closed by its own Close (Err), or Send was
	// called after the client ended. When the client ended for another
	// reason, Send's error matches both ErrClosed and that reason.
	ErrClosed = errors.New("client: closed")
	// ErrProtocol: the server sent something this client does not
	// understand (a text message, a short or malformed message, a session
	// message before the welcome), or closed with a protocol reason.
	ErrProtocol = errors.New("client: protocol error")

	// ErrQueueFull: the Messages channel stayed full for
	// Options.QueueWait; the client ended (Err) rather than stop reading
	// from the server for longer.
	ErrQueueFull = errors.New("client: message queue full")
	// ErrMessageTooLarge: a payload exceeds the server's maximum. Send
	// returns it without sending; a CloseError with
	// protocol.ReasonMessageTooLarge matches it too.
	ErrMessageTooLarge = errors.New("client: message too large")
	// ErrRateLimited: the client sent faster than the server's rate limit.
	ErrRateLimited = errors.New("client: rate limited")
	// ErrServerFull: the server holds its maximum of clients.
	ErrServerFull = errors.New("client: server full")
	// ErrReadTimeout: the server heard nothing from the client within its
	// read deadline.
	ErrReadTimeout = errors.New("client: server read timeout")
	// ErrWriteTimeout: a server's write to the client did not finish in
	// time.
	ErrWriteTimeout = errors.New("client: server write timeout")
	// ErrSlowClient: the client read too slowly and its send queue on the
	// server overflowed.
	ErrSlowClient = errors.New("client: slow client")
	// ErrAuthRefused: a server plugin refused the client at connect. It is
	// permanent for Reconnector: retrying with the same credentials will
	// not help.
	ErrAuthRefused = errors.New("client: authentication refused")
	// ErrKicked: a server plugin ended the session.
	ErrKicked = errors.New("client: kicked")
	// ErrShutdown: the server is shutting down; another server of the
	// same group may accept the client.
	ErrShutdown = errors.New("client: server shutting down")
	// ErrDraining: the server is draining (at connect), or drained and its
	// drain timeout passed; another server of the same group accepts the
	// client. A Reconnector moves before that, when the server's Move
	// comes.
	ErrDraining = errors.New("client: server draining")
)

// CloseError is the server's reason for refusing or ending a session, as
// it arrived in a KindClose message. Dial returns one when the server
// refuses the client; Err returns one when the server ends the session.
type CloseError struct {
	Reason  protocol.Reason
	Message string // the server's detail; may be empty
}

// Error formats the reason and the server's message.
func (e *CloseError) Error() string {
	if e.Message == "" {
		return "client: closed by server: " + e.Reason.String()
	}
	return fmt.Sprintf("client: closed by server: %s: %s", e.Reason, e.Message)
}

// Is reports whether target is the sentinel error for e's reason (for
// example ErrRateLimited for protocol.ReasonRateLimited). Reasons without
// a sentinel match none.
func (e *CloseError) Is(target error) bool {
	s := reasonSentinel(e.Reason)
	return s != nil && s == target
}

// reasonSentinel returns the sentinel for r, or nil.
func reasonSentinel(r protocol.Reason) error {
	switch r {
	case protocol.ReasonMessageTooLarge:
		return ErrMessageTooLarge
	case protocol.ReasonRateLimited:
		return ErrRateLimited
	case protocol.ReasonServerFull:
		return ErrServerFull
	case protocol.ReasonReadTimeout:
		return ErrReadTimeout
	case protocol.ReasonWriteTimeout:
		return ErrWriteTimeout
	case protocol.ReasonSlowClient:
		return ErrSlowClient
	case protocol.ReasonAuthRefused:
		return ErrAuthRefused
	case protocol.ReasonKicked:
		return ErrKicked
	case protocol.ReasonShutdown:
		return ErrShutdown
	case protocol.ReasonDraining:
		return ErrDraining
	case protocol.ReasonProtocol, protocol.ReasonClientProtocol:
		return ErrProtocol
	}
	return nil
}

// decodeClose turns a KindClose payload into a *CloseError, or an
// ErrProtocol error when it does not decode.
func decodeClose(payload []byte) error {
	var cl protocol.Close
	if err := cl.Decode(payload); err != nil {
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return &CloseError{Reason: cl.Reason, Message: cl.Message}
}
