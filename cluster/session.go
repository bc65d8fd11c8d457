package cluster

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
)

// session is the server side of one game client's connection to this
// external server. It implements plugins.Client.
type session struct {
	h       *clientHub
	id      uint64
	ref     plugins.ClientRef
	conn    *websocket.Conn
	cc      *clientConn // conn's socket; nil only for a conn this package did not accept
	addr    string
	info    plugins.ClientInfo
	limiter *rate.Limiter // the message budget (session_limit.go)
	abuse   *rate.Limiter // the allowance of refused messages
	pauses  atomic.Uint32 // read pauses for busy links (backpressure.go)
	goid    uint64        // the read loop's goroutine (backpressure.go)

	mu        sync.Mutex // guards the fields below
	queue     [][]byte   // whole client messages waiting to be written
	queued    int        // bytes in queue
	writing   bool       // the flusher or a writer goroutine owns the queue
	closing   bool       // a Close is queued or written: accept no more sends
	reason    *plugins.CloseError
	flushed   chan struct{} // closed once our Close is written (or failed)
	flushDone bool          // flushed is closed
	readUntil time.Time     // the read deadline extendReadDeadline set last
}

var _ plugins.Client = (*session)(nil)

func (c *session) Ref() plugins.ClientRef   { return c.ref }
func (c *session) Info() plugins.ClientInfo { return c.info }
func (c *session) RemoteAddr() string       { return c.addr }

// Send implements plugins.Client.
func (c *session) Send(tag uint16, payload []byte) error {
	return c.enqueue(protocol.AppendWS(make([]byte, 0, protocol.WSHeaderSize+len(payload)), protocol.KindUser, tag, payload))
}

func (c *session) enqueue(msg []byte) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return fmt.Errorf("%w: %s", plugins.ErrClientGone, c.ref)
	}
	if c.queued+len(msg) > c.h.cfg.SendQueueBytes {
		queued := c.queued
		c.mu.Unlock()
		c.close(protocol.ReasonSlowClient, fmt.Sprintf("send queue full (%d bytes queued, limit %d)", queued, c.h.cfg.SendQueueBytes), nil)
		return fmt.Errorf("%w: %s (slow client)", plugins.ErrClientGone, c.ref)
	}
	c.queue = append(c.queue, msg)
	c.queued += len(msg)
	c.h.msgOut.Add(1)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		c.h.markDirty(c)
	}
	return nil
}

// ping sends a WebSocket ping without waiting: to a client whose
// connection is busy (a write in progress, or part of a frame still to
// go) it goes with the next batch, so one slow client never delays the
// pings of the others (and their read deadlines).
func (c *session) ping() {
	if c.cc == nil { // a connection this package did not accept
		c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.h.cfg.WriteTimeout.Duration()))
		return
	}
	rest, err := c.cc.tryPing()
	if err != nil {
		c.conn.NetConn().Close() // the read loop reports it
		return
	}
	if rest {
		// Part of the ping is left: a writer sends it, unless one runs.
		c.mu.Lock()
		c.startWriterLocked()
		c.mu.Unlock()
	}
}

// startWriterLocked starts a writer goroutine unless one runs. Idle
// clients have none, which keeps their memory small.
func (c *session) startWriterLocked() {
	if c.writing {
		return
	}
	c.writing = true
	c.runWriterLocked()
}

// Kick implements plugins.Client.
func (c *session) Kick(message string) {
	c.close(protocol.ReasonKicked, message, nil)
}

// close ends the session: pending messages are dropped, the client is sent
// a Close with the reason, then a WebSocket close frame, and the
// connection closes, which ends the read loop. The first reason wins.
func (c *session) close(reason protocol.Reason, msg string, err error) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.reason = &plugins.CloseError{Reason: reason, Message: msg, Err: err}
	c.flushed = make(chan struct{})
	c.queue = append(c.queue[:0], nil) // nil marks the close
	c.queued = 0
	c.startWriterLocked()
	c.mu.Unlock()
}

// closedByPeer records that the client ended the session.
func (c *session) closedByPeer(reason protocol.Reason, msg string, err error) {
	c.mu.Lock()
	if !c.closing {
		c.closing = true
		c.reason = &plugins.CloseError{Reason: reason, ByPeer: true, Message: msg, Err: err}
		c.queue = nil
	}
	c.mu.Unlock()
}

func (c *session) closeReason() *plugins.CloseError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}
