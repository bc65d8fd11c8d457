package cluster

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
)

// readLoop reads the client's messages and hands them to the plugins, in
// order, until the session ends; then it reports the disconnect.
func (c *session) readLoop() {
	h := c.h
	s := h.s
	rt := h.cfg.ReadTimeout.Duration()
	c.goid = goid()
	c.limitControlFrames(rt)
	s.hooks.clientConnected(c)
	for c.readOne(rt) {
	}
	// When this side closed, let the writer deliver the reason first; the
	// write deadline bounds the wait.
	c.mu.Lock()
	flushed := c.flushed
	c.mu.Unlock()
	if flushed != nil {
		<-flushed
	}
	h.remove(c)
	le := c.closeReason()
	s.clientCloses.add(le.Reason)
	s.log.Debug().Str("client", c.ref.String()).Str("reason", le.Reason.String()).Bool("by_client", le.ByPeer).
		Str("detail", le.Message).Msg("client disconnected")
	s.hooks.clientDisconnected(c, le)
	if flushed != nil {
		c.linger()
	}
	c.conn.Close()
}

// clientLinger bounds how long a closing session keeps reading what the
// client still sends after this side's Close.
const clientLinger = 250 * time.Millisecond

// extendReadDeadline makes the read deadline at least rt from now and
// reports true, or reports false once the session is closing. It checks
// and sets under c.mu: close sets closing under c.mu before the writer
// sends the Close and halfClose shortens the deadline, so this never
// overrides that deadline (which would leave the read loop, and Shutdown,
// waiting for the whole read timeout).
//
// Setting a deadline re-arms a runtime timer, which cost about 2% of the
// CPU of a busy client's messages when done for each. A deadline is set
// readSlack beyond rt and left alone while at least rt remains: a busy
// client's reads set it about once per rt/16, and a silent client is
// closed after between rt and rt+rt/16 of silence, never before rt.
func (c *session) extendReadDeadline(rt time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	now := time.Now()
	if c.readUntil.Sub(now) >= rt {
		return true
	}
	c.readUntil = now.Add(rt + readSlack(rt))
	c.conn.SetReadDeadline(c.readUntil)
	return true
}

// readSlack is how far past the read timeout rt a read deadline is set.
func readSlack(rt time.Duration) time.Duration { return rt / 16 }

// halfClose ends this side's writes once the Close is out, but keeps the
// connection readable: closing it outright while the client still sends (a
// pong, its own close frame) makes the kernel answer with a reset, which
// discards the Close before the client has read it.
func (c *session) halfClose() {
	nc := c.conn.NetConn()
	if cc, ok := nc.(*clientConn); ok {
		nc = cc.Conn
	}
	if tc, ok := nc.(interface{ CloseWrite() error }); ok && tc.CloseWrite() == nil {
		nc.SetReadDeadline(time.Now().Add(clientLinger))
		return
	}
	c.conn.Close()
}

// linger reads and discards what the client still sends after this side's
// Close, until it closes too or clientLinger passes.
func (c *session) linger() {
	c.conn.SetReadDeadline(time.Now().Add(clientLinger))
	for i := 0; i < 1000; i++ {
		if _, _, err := c.conn.NextReader(); err != nil {
			return
		}
	}
}

// readOne reads and dispatches one message; false ends the session.
func (c *session) readOne(rt time.Duration) bool {
	h := c.h
	if !c.extendReadDeadline(rt) {
		return false
	}
	mt, r, err := c.conn.NextReader()
	if err != nil {
		c.readFailed(err)
		return false
	}
	if mt != websocket.BinaryMessage {
		c.close(protocol.ReasonProtocol, "only binary messages are accepted", nil)
		return false
	}
	bp := h.bufs.Get().(*[]byte)
	defer h.bufs.Put(bp)
	buf := *bp
	n, err := io.ReadFull(r, buf)
	switch {
	case err == nil:
		// The buffer holds one byte more than the limit allows.
		c.close(protocol.ReasonMessageTooLarge, fmt.Sprintf("messages are limited to %d bytes", h.cfg.MaxMessageBytes), nil)
		return false
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
	default:
		c.readFailed(err)
		return false
	}
	f, err := protocol.DecodeWS(buf[:n])
	if err != nil {
		c.close(protocol.ReasonProtocol, "message shorter than its header", err)
		return false
	}
	if ok, end := c.spend(); !ok {
		if !end {
			c.refuseOverBudget(f)
		}
		return !end
	}
	h.msgIn.Add(1)
	mark := h.s.flow.mark()
	switch f.Kind {
	case protocol.KindUser:
		h.s.hooks.clientMessage(c, plugins.Message{Tag: f.Tag, Payload: f.Payload})
	default:
		if !protocol.IsExtensionKind(f.Kind) {
			c.close(protocol.ReasonProtocol, fmt.Sprintf("unexpected message kind %s from a client", f.Kind), nil)
			return false
		}
		if err := h.s.hooks.clientFrame(c, f); err != nil {
			c.close(protocol.ReasonProtocol, fmt.Sprintf("bad %s message", f.Kind), err)
			return false
		}
	}
	// Backpressure: the next message waits while a link this one's sends
	// made busy drains (backpressure.go).
	return c.pauseIfBusy(mark)
}

func (c *session) readFailed(err error) {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		c.closedByPeer(protocol.ReasonNone, fmt.Sprintf("client closed (%d %s)", ce.Code, ce.Text), nil)
	case errors.As(err, &ne) && ne.Timeout():
		c.close(protocol.ReasonReadTimeout, fmt.Sprintf("silent for %s", c.h.cfg.ReadTimeout.Duration()), nil)
	case isWebSocketProtocolError(err):
		c.brokeProtocol(err)
	default:
		c.closedByPeer(protocol.ReasonIO, "connection failed", err)
	}
}

// isWebSocketProtocolError reports whether a read failed because the client
// broke the WebSocket protocol (a bad mask, reserved bits, a bad opcode, an
// oversized control frame, ...). gorilla/websocket reports those as plain
// errors whose text starts with "websocket: ", having already sent a close
// frame with code 1002 (protocol error) and the same text.
func isWebSocketProtocolError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, errRateLimited) {
		return false
	}
	return strings.HasPrefix(err.Error(), "websocket: ")
}

// brokeProtocol ends a session whose client broke the WebSocket protocol.
// gorilla has already answered with a close frame (1002 and its reason
// text), after which no KindClose can follow; the session's reason, which
// the plugins see, is ReasonProtocol, and the log says what was wrong.
func (c *session) brokeProtocol(err error) {
	c.mu.Lock()
	if !c.closing {
		c.closing = true
		c.reason = &plugins.CloseError{Reason: protocol.ReasonProtocol, Message: "WebSocket protocol error", Err: err}
		c.queue = nil
	}
	c.mu.Unlock()
	c.h.warn("websocket protocol error").Str("remote_addr", c.addr).Str("client", c.ref.String()).
		Str("reason", protocol.ReasonProtocol.String()).Err(err).Msg("a client broke the WebSocket protocol")
}
