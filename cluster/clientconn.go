package cluster

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// clientConn is a game client's connection: it replays the bytes the
// sniffer read, reads the socket in large chunks (readAhead), and can be
// corked so that a batch of WebSocket frames goes out in one write. A nil
// *clientConn is valid and never corks.
type clientConn struct {
	net.Conn
	prefix *bytes.Reader
	bufs   *sync.Pool // of *[]byte, shared by the hub's clients

	nb *nonblockWriter // of Conn, when it is a socket; nil otherwise
	ra readAhead       // of Conn, when it is a socket and rbufs was given

	mu     sync.Mutex // guards corked, buf and tail; held across a flush
	corked bool
	buf    *[]byte
	tail   []byte // the unwritten rest of a frame tryWrite began

	pingDue atomic.Bool // a ping waits for the write that held the connection
}

// readAheadSize is the chunk a client's socket is read in (readAhead):
// one read(2) takes every message waiting, up to this many bytes.
const readAheadSize = 64 << 10

// newClientConn wraps conn, whose first bytes the sniffer read as prefix.
// Write batches come from bufs; read chunks from rbufs (of *[]byte of
// readAheadSize), or, when rbufs is nil, conn is read directly.
func newClientConn(conn net.Conn, prefix []byte, bufs, rbufs *sync.Pool) *clientConn {
	c := &clientConn{Conn: conn, prefix: bytes.NewReader(prefix), bufs: bufs}
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.nb = newNonblockWriter(raw)
			if rbufs != nil {
				c.ra.init(raw, rbufs)
			}
		}
	}
	return c
}

// tryWrite frames each of msgs as one binary WebSocket message (server
// frames are unmasked) and writes them all in one non-blocking write. What
// the socket does not take at once stays as the connection's tail, which
// the next write, cork or uncork sends first, so frames never interleave.
// A connection that is not a plain socket keeps it all as the tail.
// It reports whether it ran (false, having written nothing, when another
// write holds the connection, such as a ping blocked on a full socket, so
// that the caller never waits) and whether a tail is left. Callers must be
// the client's only writer of messages.
func (c *clientConn) tryWrite(msgs [][]byte) (wrote, rest bool, err error) {
	if !c.mu.TryLock() {
		return false, false, nil
	}
	defer c.mu.Unlock()
	b := c.bufs.Get().(*[]byte)
	frame := c.appendDuePing((*b)[:0])
	for _, m := range msgs {
		frame = append(wsFrameHeader(frame, len(m)), m...)
	}
	defer func() {
		if cap(frame) <= 1<<20 {
			*b = frame[:0]
			c.bufs.Put(b)
		}
	}()
	n := 0
	if c.tail == nil && !c.corked && c.nb != nil {
		if n, err = c.nb.write(frame); err != nil {
			return false, false, err
		}
	}
	if n < len(frame) {
		c.tail = append(c.tail, frame[n:]...)
	}
	return true, c.tail != nil, nil
}

// tryPing writes an empty ping frame without blocking. When another write
// holds the connection or part of a frame waits, the ping is marked due
// and goes out with the next batch the client's writers send. A corked
// connection takes the ping into its batch; one that is not a plain socket
// (wss) keeps it all as the tail, for a writer goroutine.
// It reports whether part of the ping is left as the tail.
func (c *clientConn) tryPing() (rest bool, err error) {
	if !c.mu.TryLock() {
		c.pingDue.Store(true) // the write in progress sends it next
		return false, nil
	}
	defer c.mu.Unlock()
	c.pingDue.Store(false)
	ping := pingFrame[:]
	switch {
	case c.corked:
		*c.buf = append(*c.buf, ping...)
		return false, nil
	case c.tail != nil:
		c.pingDue.Store(true) // after the rest of the frame
		return false, nil
	case c.nb == nil: // not a plain socket (wss): a writer sends it
		c.tail = append(c.tail, ping...)
		return true, nil
	}
	n, err := c.nb.write(ping)
	if err != nil {
		return false, err
	}
	if n > 0 && n < len(ping) {
		c.tail = append(c.tail, ping[n:]...)
		return true, nil
	}
	return false, nil
}

// hasTail reports whether part of a frame still waits to be written.
func (c *clientConn) hasTail() bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tail != nil
}

// writeTailLocked writes the rest of a partly written frame, blocking.
func (c *clientConn) writeTailLocked() error {
	if c.tail == nil {
		return nil
	}
	_, err := c.Conn.Write(c.tail)
	c.tail = nil
	return err
}

// wsFrameHeader appends the header of an unmasked, final, binary
// WebSocket frame of n payload bytes (RFC 6455 section 5.2).
func wsFrameHeader(dst []byte, n int) []byte {
	const finBinary = 0x82
	switch {
	case n < 126:
		return append(dst, finBinary, byte(n))
	case n <= 0xFFFF:
		return append(dst, finBinary, 126, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, finBinary, 127), uint64(n))
	}
}

func (c *clientConn) Read(p []byte) (int, error) {
	if c.prefix.Len() > 0 {
		return c.prefix.Read(p)
	}
	if c.ra.on() {
		return c.ra.read(p)
	}
	return c.Conn.Read(p)
}

// Write buffers p while the connection is corked, and writes it otherwise.
// Control frames written meanwhile (pings) queue behind the batch.
func (c *clientConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	if err := c.writeTailLocked(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *clientConn) cork() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.corked = true
	c.buf = c.bufs.Get().(*[]byte)
	if c.tail != nil {
		*c.buf = append(*c.buf, c.tail...)
		c.tail = nil
	}
	*c.buf = c.appendDuePing(*c.buf)
	c.mu.Unlock()
}

// pingFrame is an empty WebSocket ping: final, opcode 9, no payload (RFC
// 6455 section 5.5.2).
var pingFrame = [2]byte{0x89, 0}

// appendDuePing appends a ping that could not be written when it was due
// (another write held the connection), at a frame boundary.
func (c *clientConn) appendDuePing(b []byte) []byte {
	if c.pingDue.Swap(false) {
		b = append(b, pingFrame[:]...)
	}
	return b
}

// uncork writes what was buffered and returns the buffer to the pool, so an
// idle client holds none.
func (c *clientConn) uncork() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return nil
	}
	c.corked = false
	var err error
	if len(*c.buf) > 0 {
		_, err = c.Conn.Write(*c.buf)
	}
	if cap(*c.buf) <= 1<<20 {
		*c.buf = (*c.buf)[:0]
		c.bufs.Put(c.buf)
	}
	c.buf = nil
	return err
}
