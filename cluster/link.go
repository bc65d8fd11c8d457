package cluster

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
)

// flushTimeout bounds the final flush of a closing link.
const flushTimeout = 2 * time.Second

// keepBuffer reports whether the writer keeps its buffer, of capacity
// bytes, whose last batch was n bytes, for a later batch. A small one is
// always kept; one grown for a burst is kept while batches stay large,
// and let go once they are small again, so that a quiet link holds
// little. Letting every batch over 4 MiB go made a flood regrow the
// queue from nothing for each: the copies of append and the zeroing of
// new buffers took a third of its CPU.
func keepBuffer(capacity, n int) bool {
	return capacity <= minKeptBuffer || n >= capacity/8
}

// minKeptBuffer is the capacity of write buffer a link always keeps.
const minKeptBuffer = 4 << 20

// frameKindTagSize is what a frame's length field counts besides the
// payload: the kind (1 byte) and the tag (2 bytes). links.maxFrame bounds
// the length field, so a payload may hold MaxFrame-frameKindTagSize bytes.
const frameKindTagSize = protocol.HeaderSize - 4 // minus the length field

// maxFramePayload returns the largest payload a frame on a link may carry.
func (s *Server) maxFramePayload() int { return s.links.MaxFrame - frameKindTagSize }

// link is one authenticated connection to a remote server. One read loop
// (running on the goroutine that made the link) and one write loop own the
// connection. Producers never write to the socket: they append frames to
// pending and wake the writer, which writes everything pending in one call
// with the lock released.
type link struct {
	s    *Server
	r    *remote
	conn net.Conn
	rd   *protocol.Reader
	log  zerolog.Logger
	// transport is the connection's network: "tcp", or "unix" for a link
	// between servers of one host (localsock.go).
	transport string

	wake chan struct{} // cap 1: pending went from empty to non-empty
	quit chan struct{} // closed by close
	done chan struct{} // closed when both loops have ended and conn is closed
	// pendingLen is len(pending), stored under mu while gathering, so
	// that the writer watches its batch grow without taking mu from the
	// senders, and the senders store it only then.
	pendingLen atomic.Int64

	mu        sync.Mutex // guards the fields below
	pending   []byte
	closed    bool
	reason    *plugins.CloseError
	sendClose bool   // write a Close frame after the final flush
	out       uint64 // plugin messages queued
	outBytes  uint64 // frame bytes queued, all kinds
	unwritten int    // bytes of the batch the writer took not yet written
	gathering bool   // the writer watches pendingLen (gather)
	// drained is non-nil while the link is busy: its queue (pending plus
	// unwritten) reached the high-water mark. The writer closes it and
	// sets it to nil once the queue falls under the low-water mark
	// (backpressure.go).
	drained chan struct{}

	in          atomic.Uint64 // plugin messages received
	inBytes     atomic.Uint64 // frame bytes received, all kinds
	seen        atomic.Bool   // a frame arrived since the last heartbeat tick
	silentTicks int           // heartbeat loop only
	writerDone  chan struct{}
}

func newLink(s *Server, r *remote, conn net.Conn, rd *protocol.Reader) *link {
	growSocketBuffers(conn)
	return &link{
		s:          s,
		r:          r,
		conn:       conn,
		rd:         rd,
		log:        s.log.With().Str("peer", r.id).Str("peer_group", r.g.name).Logger(),
		transport:  transportOf(conn),
		wake:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

// send queues one frame. It never blocks (backpressure.go says what
// happens when the queue is long).
func (l *link) send(kind protocol.Kind, tag uint16, payload []byte) error {
	return l.sendPrefixed(kind, tag, nil, payload)
}

// sendPrefixed queues one frame whose payload is head followed by body,
// so callers can prefix a payload without copying it first. A frame that
// would take the queue past links.queueBytes is refused with ErrBusy
// (control frames excepted: they are small and must not be lost); the
// link stays up.
func (l *link) sendPrefixed(kind protocol.Kind, tag uint16, head, body []byte) error {
	n := len(head) + len(body)
	if limit := l.s.maxFramePayload(); n > limit {
		return fmt.Errorf("%w: %d bytes, limit %d", plugins.ErrMessageTooLarge, n, limit)
	}
	size := protocol.HeaderSize + n
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("%w: %s", plugins.ErrNotConnected, l.r.id)
	}
	queued := len(l.pending) + l.unwritten
	if queued+size > l.s.links.QueueBytes && !isControlKind(kind) {
		l.mu.Unlock()
		return l.refuseBusy(queued)
	}
	wasEmpty := len(l.pending) == 0
	l.pending = protocol.AppendHeader(l.pending, kind, tag, n)
	l.pending = append(append(l.pending, head...), body...)
	if l.gathering {
		l.pendingLen.Store(int64(len(l.pending)))
	}
	l.outBytes += uint64(size)
	if countsAsMessage(kind) {
		l.out++
	}
	busy, became := l.markBusyLocked(queued + size)
	l.mu.Unlock()
	if became {
		l.s.flow.becameBusy(l, queued+size)
	}
	if busy && !isControlKind(kind) {
		l.s.flow.sentToBusy(l)
	}
	if wasEmpty {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// countsAsMessage reports the kinds Stats counts as messages: plugin
// messages, messages routed to game clients, and extension frames (cloud
// memory); not handshake, heartbeat or close frames.
func countsAsMessage(k protocol.Kind) bool {
	switch k {
	case protocol.KindUser, protocol.KindClientSend, protocol.KindClientMulti, protocol.KindClientFrame:
		return true
	}
	return protocol.IsExtensionKind(k)
}

// sendSystem queues a system frame, ignoring a closed link.
func (l *link) sendSystem(kind protocol.Kind, payload []byte) {
	_ = l.send(kind, 0, payload)
}

func (l *link) counts() (in, out uint64) {
	l.mu.Lock()
	out = l.out
	l.mu.Unlock()
	return l.in.Load(), out
}

// close starts closing the link: the writer flushes what is pending, writes
// a Close frame when tell is true, and closes the connection, which ends the
// read loop. The first reason wins.
func (l *link) close(reason protocol.Reason, msg string, err error, tell bool) {
	l.closeWith(&plugins.CloseError{Reason: reason, Message: msg, Err: err}, tell)
}

func (l *link) closeWith(le *plugins.CloseError, tell bool) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.reason = le
	l.sendClose = tell
	l.mu.Unlock()
	// Bound the final flush, and unblock a writer stuck on a slow peer.
	l.conn.SetWriteDeadline(time.Now().Add(flushTimeout))
	close(l.quit)
}

// abort closes the connection at once, without flushing.
func (l *link) abort() {
	l.close(protocol.ReasonShutdown, "server closed", nil, false)
	l.conn.Close()
}

func (l *link) closeReason() *plugins.CloseError {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reason
}

// writeLoop owns writes to the connection after the handshake.
func (l *link) writeLoop() {
	defer close(l.writerDone)
	var buf []byte
	for {
		select {
		case <-l.wake:
		case <-l.quit:
			l.finalFlush(buf)
			return
		}
		// Yield before taking what is pending, so producers that are
		// already runnable (other clients' requests, the replies to a read
		// batch) append first and the batch goes out in one write instead of
		// several: this cut link writes per cloud-memory Post roughly in
		// three. With nothing else runnable it returns at once.
		l.gather()
		l.mu.Lock()
		buf, l.pending = l.pending, buf[:0]
		l.gathering = false
		l.unwritten = len(buf)
		l.mu.Unlock()
		if len(buf) == 0 {
			continue
		}
		if err := l.write(buf); err != nil {
			reason, msg := protocol.ReasonIO, "write failed"
			if errors.Is(err, errWriteStalled) {
				reason, msg = protocol.ReasonWriteStalled, fmt.Sprintf("a write made no progress for %s", l.s.links.Timeout.Duration())
			}
			l.close(reason, msg, err, false)
			l.finalFlush(nil)
			return
		}
		if !keepBuffer(cap(buf), len(buf)) {
			buf = nil
		}
	}
}

// gatherYields bounds how often the writer yields while the batch keeps
// growing, and gatherBytes the batch it waits for.
const (
	gatherYields = 8
	gatherBytes  = 64 << 10
)

// gather yields to runnable producers before the writer takes a batch:
// once, and again while each yield grew the batch (under load, when many
// clients' messages are on their way), up to gatherYields times or
// gatherBytes. Each write(2) on loopback costs far more than a frame, so
// a fuller batch carries more messages for the same cost; an idle link's
// single message goes out after one yield, as before. It watches the
// batch through pendingLen, which the senders store only while it
// gathers: taking mu for each look, or the senders storing an atomic on
// every send, made their cache lines bounce between the cores, about 9%
// of a relayed message's CPU.
func (l *link) gather() {
	l.mu.Lock()
	l.gathering = true
	l.pendingLen.Store(int64(len(l.pending)))
	l.mu.Unlock()
	runtime.Gosched()
	n := l.pendingLen.Load()
	for range gatherYields - 1 {
		if n >= gatherBytes {
			return
		}
		runtime.Gosched()
		m := l.pendingLen.Load()
		if m == n {
			return
		}
		n = m
	}
}

// errWriteStalled is returned by link.write when the peer took nothing
// for links.timeout.
var errWriteStalled = errors.New("cluster: link write stalled")

// writeChunk is the most a link writes in one step, so that the queue's
// length (which counts the batch being written) shrinks as the peer takes
// bytes, not only once a whole batch is out.
const writeChunk = 256 << 10

// write writes b, bounding each step by links.timeout: a peer that keeps
// taking bytes, however slowly, is served (a busy peer), and one that
// stops reading gets errWriteStalled (a stuck peer). Once the link is
// closing, the deadline close set (flushTimeout) bounds the write
// instead; a step that began before close keeps its own bound.
func (l *link) write(b []byte) error {
	timeout := l.s.links.Timeout.Duration()
	for len(b) > 0 {
		select {
		case <-l.quit:
			_, err := l.conn.Write(b)
			return err
		default:
		}
		l.conn.SetWriteDeadline(time.Now().Add(timeout))
		n, err := l.conn.Write(b[:min(len(b), writeChunk)])
		b = b[n:]
		l.wrote(n)
		if err == nil {
			continue
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return err
		}
		if n == 0 {
			select {
			case <-l.quit: // close's deadline ended it
				return err
			default:
				return fmt.Errorf("%w: %w", errWriteStalled, err)
			}
		}
	}
	return nil
}

// finalFlush writes what is still pending and, if asked, a Close frame, then
// closes the connection. buf is a spare buffer to reuse.
func (l *link) finalFlush(buf []byte) {
	l.mu.Lock()
	buf, l.pending = append(buf[:0], l.pending...), nil
	le, tell := l.reason, l.sendClose
	l.mu.Unlock()
	if tell && le != nil {
		c := protocol.Close{Reason: le.Reason, Message: le.Message}
		buf = protocol.AppendFrame(buf, protocol.KindClose, 0, c.AppendTo(nil))
	}
	if len(buf) > 0 {
		// Best effort, bounded anew: write may have moved close's
		// deadline while it raced it.
		l.conn.SetWriteDeadline(time.Now().Add(flushTimeout))
		l.conn.Write(buf)
	}
	l.conn.Close()
}

// readLoop reads frames until the connection ends and dispatches them. It
// runs on the goroutine that created the link.
func (l *link) readLoop() {
	hooks := l.s.hooks
	var ids []uint64 // scratch for client routing frames
	id, mark := goid(), l.s.flow.mark()
	for {
		// Backpressure: what the last frame's hooks sent may have left a
		// link busy; read on once it drains (backpressure.go).
		l.pauseIfBusy(mark, id)
		mark = l.s.flow.mark()
		f, err := l.rd.Next()
		if err != nil {
			l.readFailed(err)
			return
		}
		if !l.seen.Load() {
			l.seen.Store(true)
		}
		// Only this loop writes inBytes: a load and a store are enough,
		// without the locked add.
		l.inBytes.Store(l.inBytes.Load() + uint64(protocol.HeaderSize+len(f.Payload)))
		switch f.Kind {
		case protocol.KindUser:
			l.in.Add(1)
			hooks.message(l.r, plugins.Message{Tag: f.Tag, Payload: f.Payload})
		case protocol.KindClientSend, protocol.KindClientMulti, protocol.KindClientGone, protocol.KindClientFrame:
			if countsAsMessage(f.Kind) {
				l.in.Add(1)
			}
			if ids, err = l.clientFrame(f, ids); err != nil {
				l.close(protocol.ReasonProtocol, "malformed "+f.Kind.String()+" frame", err, true)
				return
			}
		case protocol.KindPing:
			l.sendSystem(protocol.KindPong, nil)
		case protocol.KindPong:
		case protocol.KindLeaving:
			l.r.leaving.Store(true)
			l.log.Info().Msg("peer is leaving")
		case protocol.KindClose:
			var c protocol.Close
			if err := c.Decode(f.Payload); err != nil {
				l.close(protocol.ReasonProtocol, "malformed close frame", err, true)
				continue
			}
			if c.Reason == protocol.ReasonShutdown {
				// A graceful shutdown: the peer is leaving.
				l.r.leaving.Store(true)
			}
			l.closeWith(&plugins.CloseError{Reason: c.Reason, ByPeer: true, Message: c.Message}, false)
		default:
			if protocol.IsExtensionKind(f.Kind) {
				l.in.Add(1)
				if err := hooks.serverFrame(l.r, f); err != nil {
					l.close(protocol.ReasonProtocol, fmt.Sprintf("bad %s frame", f.Kind), err, true)
					return
				}
				continue
			}
			l.close(protocol.ReasonProtocol, fmt.Sprintf("unexpected frame kind %s on a link", f.Kind), nil, true)
			return
		}
	}
}

// readFailed records why reading stopped.
func (l *link) readFailed(err error) {
	switch {
	case errors.Is(err, protocol.ErrFrameTooLarge), errors.Is(err, protocol.ErrShortFrame):
		reason := protocol.ReasonProtocol
		if errors.Is(err, protocol.ErrFrameTooLarge) {
			reason = protocol.ReasonFrameTooLarge
		}
		l.close(reason, "bad frame", err, true)
	case errors.Is(err, io.EOF):
		l.close(protocol.ReasonIO, "connection closed by peer", nil, false)
	default:
		l.close(protocol.ReasonIO, "read failed", err, false)
	}
}

// run serves an authenticated link until it ends: it attaches the link to
// its remote server (firing Joined and Connected as due), starts the writer,
// reads until the connection ends, and detaches (firing Disconnected, and
// Left when due). It returns when both loops have ended.
func (l *link) run() {
	s := l.s
	if !s.addLink(l) {
		l.conn.Close()
		close(l.done)
		return
	}
	if !s.goTracked(l.writeLoop) {
		// The server stopped starting goroutines: it is closing.
		s.removeLink(l)
		l.conn.Close()
		close(l.done)
		return
	}
	if l.r.attach(l) {
		l.log.Info().Str("direction", l.r.g.dir.String()).Str("transport", l.transport).Msg("link up")
		l.readLoop()
	} else {
		l.close(protocol.ReasonReplaced, "remote server retired", nil, true)
	}
	<-l.writerDone
	l.conn.Close()
	le := l.closeReason()
	s.linkCloses.add(le.Reason)
	ev := l.log.Info()
	switch {
	case le.Reason == protocol.ReasonShutdown, le.Reason == protocol.ReasonPeerLeft, le.Reason == protocol.ReasonReplaced:
	case l.r.leaving.Load():
		// The peer announced its shutdown; its connection ending is expected.
	default:
		ev = l.log.Warn()
	}
	ev.Str("reason", le.Reason.String()).Bool("by_peer", le.ByPeer).Str("detail", le.Message).AnErr("error", le.Err).Msg("link down")
	s.removeLink(l)
	l.r.detach(l, le)
	close(l.done)
}

func (s *Server) addLink(l *link) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running() {
		return false
	}
	s.linkSet[l] = struct{}{}
	return true
}

func (s *Server) removeLink(l *link) {
	t, _ := l.totals()
	s.mu.Lock()
	delete(s.linkSet, l)
	s.closedIn += t.MessagesIn
	s.closedOut += t.MessagesOut
	l.r.g.closed.add(t)
	s.mu.Unlock()
}

// heartbeatLoop pings every link each heartbeat interval and closes links
// that stayed silent past the timeout. Only silence closes a link here:
// the registry no longer listing the peer does not (a live link is
// trusted over the registry).
func (s *Server) heartbeatLoop() {
	every := s.links.Heartbeat.Duration()
	maxSilent := int((s.links.Timeout.Duration() + every - 1) / every)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		for _, l := range s.liveLinks() {
			if l.seen.Swap(false) {
				l.silentTicks = 0
			} else if l.silentTicks++; l.silentTicks >= maxSilent {
				l.close(protocol.ReasonHeartbeatTimeout, fmt.Sprintf("silent for %s", s.links.Timeout.Duration()), nil, true)
				continue
			}
			l.sendSystem(protocol.KindPing, nil)
		}
	}
}
