package cluster

import (
	"errors"
	"net"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
)

// writeLoop writes queued messages until the queue is empty, then ends.
// Everything queued at once goes out in one write: the connection is corked
// while gorilla frames the batch, then flushed.
func (c *session) writeLoop() {
	wt := c.h.cfg.WriteTimeout.Duration()
	cc := c.cc
	for {
		c.mu.Lock()
		batch := c.queue
		c.queue, c.queued = nil, 0
		if len(batch) == 0 && cc.hasTail() {
			// The rest of a frame tryWrite began: cork and uncork send it.
			c.mu.Unlock()
			// gorilla's SetWriteDeadline applies at its next write; the
			// socket's own deadline bounds this one.
			cc.SetWriteDeadline(time.Now().Add(wt))
			cc.cork()
			if err := cc.uncork(); err != nil {
				c.writeFailed(err)
				return
			}
			continue
		}
		if len(batch) == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.conn.SetWriteDeadline(time.Now().Add(wt))
		cc.cork()
		for _, m := range batch {
			if m == nil {
				if err := cc.uncork(); err != nil {
					c.writeFailed(err)
					return
				}
				c.mu.Lock()
				le, flushed := c.reason, c.flushed
				c.mu.Unlock()
				c.writeClose(le.Reason, le.Message)
				c.halfClose()
				c.mu.Lock()
				c.writing = false
				c.markFlushedLocked(flushed)
				c.mu.Unlock()
				return
			}
			if err := c.conn.WriteMessage(websocket.BinaryMessage, m); err != nil {
				cc.uncork()
				c.writeFailed(err)
				return
			}
		}
		if err := cc.uncork(); err != nil {
			c.writeFailed(err)
			return
		}
	}
}

// writeFailed ends the session after a failed write.
func (c *session) writeFailed(err error) {
	reason := protocol.ReasonIO
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		reason = protocol.ReasonWriteTimeout
	}
	c.mu.Lock()
	flushed := c.flushed
	if !c.closing {
		c.closing = true
		c.reason = &plugins.CloseError{Reason: reason, Message: "write failed", Err: err}
	}
	c.queue = nil
	c.writing = false
	c.mu.Unlock()
	c.conn.Close()
	c.mu.Lock()
	c.markFlushedLocked(flushed)
	c.mu.Unlock()
}

// markFlushedLocked closes flushed, the channel of this side's Close,
// once: the Close was written, its write failed, or it was dropped.
func (c *session) markFlushedLocked(flushed chan struct{}) {
	if flushed != nil && !c.flushDone {
		c.flushDone = true
		close(flushed)
	}
}

// runWriterLocked runs writeLoop on a tracked goroutine for the queue the
// caller owns (writing is set). When the server starts no more goroutines
// the session ends instead: the queue is dropped, the connection closes,
// and a queued Close counts as flushed.
func (c *session) runWriterLocked() {
	if c.h.s.goTracked(c.writeLoop) {
		return
	}
	if !c.closing {
		c.closing = true
		c.reason = &plugins.CloseError{Reason: protocol.ReasonShutdown, Message: "server closed"}
	}
	c.queue, c.queued = nil, 0
	c.writing = false
	c.conn.Close()
	c.markFlushedLocked(c.flushed)
}

// writeClose tells the client why it is being disconnected: a KindClose
// message, then a WebSocket close frame. Callers own the write side.
func (c *session) writeClose(reason protocol.Reason, msg string) {
	wt := c.h.cfg.WriteTimeout.Duration()
	cl := protocol.Close{Reason: reason, Message: msg}
	c.conn.SetWriteDeadline(time.Now().Add(wt))
	c.conn.WriteMessage(websocket.BinaryMessage, protocol.AppendWS(nil, protocol.KindClose, 0, cl.AppendTo(nil)))
	code := websocket.ClosePolicyViolation
	switch reason {
	case protocol.ReasonMessageTooLarge:
		code = websocket.CloseMessageTooBig
	case protocol.ReasonServerFull:
		code = websocket.CloseTryAgainLater
	case protocol.ReasonShutdown, protocol.ReasonDraining:
		code = websocket.CloseGoingAway
	}
	text := reason.String()
	if len(text) > 120 {
		text = text[:120]
	}
	c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(wt))
}
