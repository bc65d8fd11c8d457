package client

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudrift/cloudrift/protocol"
)

// The client's read side: one goroutine reads every message from the
// server, delivers it, and records why the client ended.

// readLoop reads until the connection ends, delivering user messages. It
// keeps reading all the time so that pings are answered, except while
// Handler runs or the Messages channel is full.
func (c *Client) readLoop() {
	var err error
	defer func() { c.finish(err) }()
	var buf []byte
	for {
		var mt int
		mt, buf, err = c.readMessage(buf)
		if err != nil {
			err = c.readError(err)
			return
		}
		if mt != websocket.BinaryMessage {
			err = fmt.Errorf("%w: unexpected text message", ErrProtocol)
			return
		}
		f, derr := protocol.DecodeWS(buf)
		if derr != nil {
			err = fmt.Errorf("%w: %w", ErrProtocol, derr)
			return
		}
		switch f.Kind {
		case protocol.KindUser:
			var more bool
			if more, err = c.deliver(f); !more {
				return // Close was called, or the queue is full
			}
		case protocol.KindClose:
			err = decodeClose(f.Payload)
			sendCloseFrame(c.conn, c.opts.WriteTimeout)
			return
		case protocol.KindCloudReply, protocol.KindCloudResult, protocol.KindCloudNotify, protocol.KindCloudResync:
			more, derr := c.cloudFrame(f)
			if derr != nil {
				err = fmt.Errorf("%w: %w", ErrProtocol, derr)
				return
			}
			if !more {
				return // Close was called
			}
		case protocol.KindClientWelcome:
			err = fmt.Errorf("%w: a second welcome", ErrProtocol)
			return
		case protocol.KindClientMove:
			var m Move
			if derr := m.Decode(f.Payload); derr != nil {
				err = fmt.Errorf("%w: %w", ErrProtocol, derr)
				return
			}
			c.offerMove(m)
		default:
			// Extension kinds (64–95) belong to the game's own plugins;
			// this SDK has no use for them and skips them. Any other
			// kind is one a server never sends a client: the stream
			// cannot be trusted past it.
			if !protocol.IsExtensionKind(f.Kind) {
				err = fmt.Errorf("%w: unexpected message kind %s", ErrProtocol, f.Kind)
				return
			}
		}
		if cap(buf) > maxKeptBuffer {
			buf = nil
		}
		if c.opts.ReadTimeout > 0 {
			c.conn.SetReadDeadline(time.Now().Add(c.opts.ReadTimeout))
		}
	}
}

// offerMove puts m on the Moved channel, replacing a Move nobody
// received yet (read goroutine: the only sender).
func (c *Client) offerMove(m Move) {
	select {
	case c.moves <- m:
		return
	default:
	}
	select {
	case <-c.moves:
	default:
	}
	c.moves <- m
}

// readMessage reads the next data message into buf (reused) and returns
// its type and the filled buffer. Control frames are handled inside.
func (c *Client) readMessage(buf []byte) (int, []byte, error) {
	mt, r, err := c.conn.NextReader()
	if err != nil {
		return 0, buf, err
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return mt, buf, nil
		}
		if err != nil {
			return 0, buf, err
		}
	}
}

// deliver hands one user message to the Handler or the channel. It reports
// false when the read loop should stop: Close was called (err nil), or the
// channel stayed full for QueueWait (err matches ErrQueueFull; the server
// is told the client leaves).
func (c *Client) deliver(f protocol.Frame) (bool, error) {
	select {
	case <-c.quit:
		return false, nil
	default:
	}
	if c.opts.Handler != nil {
		c.opts.Handler(Message{Tag: f.Tag, Payload: f.Payload})
		return true, nil
	}
	m := Message{Tag: f.Tag, Payload: append([]byte(nil), f.Payload...)}
	select {
	case c.msgs <- m:
		return true, nil
	default:
	}
	t := time.NewTimer(c.opts.QueueWait)
	defer t.Stop()
	select {
	case c.msgs <- m:
		return true, nil
	case <-c.quit:
		return false, nil
	case <-t.C:
	}
	sendCloseFrame(c.conn, c.opts.WriteTimeout)
	return false, fmt.Errorf("%w: %d messages waited on Messages for %v", ErrQueueFull, cap(c.msgs), c.opts.QueueWait)
}

// readError describes a read failure.
func (c *Client) readError(err error) error {
	var ne net.Error
	var ce *websocket.CloseError
	switch {
	case c.opts.ReadTimeout > 0 && errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("client: nothing from the server for %v: %w", c.opts.ReadTimeout, err)
	case errors.As(err, &ce) && ce.Code == websocket.CloseProtocolError:
		// The server found this client broke the WebSocket protocol.
		return &CloseError{Reason: protocol.ReasonProtocol, Message: ce.Text}
	case errors.As(err, &ce):
		return fmt.Errorf("client: connection closed by the server: %w", err)
	case errors.Is(err, websocket.ErrReadLimit):
		return fmt.Errorf("%w: a message from the server exceeds Options.MaxReceive (%d bytes)", ErrProtocol, c.opts.MaxReceive)
	}
	return fmt.Errorf("client: read: %w", err)
}

// finish records why the client ended and releases everything. It runs
// once, at the end of the read loop.
func (c *Client) finish(err error) {
	c.conn.Close()
	c.mu.Lock()
	var ce *CloseError
	switch {
	case errors.As(err, &ce):
		// The server's reason wins, even over a concurrent Close.
	case c.closed:
		err = ErrClosed
	case c.writeErr != nil:
		err = c.writeErr
	case err == nil:
		err = ErrClosed
	}
	c.err = err
	c.ended = true
	c.mu.Unlock()
	if c.msgs != nil {
		close(c.msgs)
	}
	c.endCloud()
	close(c.done)
}
