package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
)

// The client runtime of an external server: game clients connect over
// WebSocket, each message `u8 kind | u16 tag | payload`. A client gets a
// ClientWelcome with its ClientRef, then exchanges KindUser messages; the
// server ends a session with a KindClose naming the reason, then a
// WebSocket close frame.

// clientHub holds an external server's clients.
type clientHub struct {
	s        *Server
	cfg      config.Clients
	upgrader websocket.Upgrader
	http     *http.Server
	idBase   uint64        // random high bits, so refs of an earlier incarnation miss
	seq      atomic.Uint64 // low bits of the next client ID
	count    atomic.Int64  // clients connected
	bufs     sync.Pool     // read buffers of MaxMessageBytes+header+1
	wbufs    sync.Pool     // write batches of corked connections (*[]byte)

	mu      sync.Mutex // guards clients
	clients map[uint64]*client

	// The flusher writes what is sent to clients, in non-blocking writes,
	// so that senders (hooks, often holding their own locks) never wait on
	// a socket and no goroutine starts per message.
	fwake    chan struct{} // cap 1: dirty went from empty to non-empty
	fmu      sync.Mutex    // guards the fields below
	dirty    []*client     // clients with queued messages the flusher owns
	spare    []*client
	fstopped bool // the flusher has ended: writers take over
}

func newClientHub(s *Server) *clientHub {
	h := &clientHub{
		s:       s,
		cfg:     s.group.Clients,
		idBase:  (s.incarnation & 0xffff_ffff) << 32,
		clients: make(map[uint64]*client),
		fwake:   make(chan struct{}, 1),
	}
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: s.links.HandshakeTimeout.D(),
		ReadBufferSize:   512,
		WriteBufferSize:  1024,
		WriteBufferPool:  &sync.Pool{},
		// Game clients are not browsers on a web origin; a plugin's
		// Authenticate decides who may connect.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	mux := http.NewServeMux()
	mux.HandleFunc(h.cfg.Path, h.serveWS)
	// Built here, not in serve, so shutdown and abort may close it at any
	// time after New without racing its creation.
	h.http = &http.Server{Handler: mux, ReadHeaderTimeout: s.links.HandshakeTimeout.D()}
	size := h.cfg.MaxMessageBytes + protocol.WSHeaderSize + 1
	h.bufs.New = func() any { b := make([]byte, size); return &b }
	h.wbufs.New = func() any { b := make([]byte, 0, 16<<10); return &b }
	return h
}

// serve runs the HTTP server on ln until it closes. Connections that do
// not start with an HTTP request (a server link dialling an external port)
// are refused with a logged reason before HTTP sees them.
func (h *clientHub) serve(ln net.Listener) {
	sl := newSniffListener(h.s, ln)
	h.s.goTracked(sl.acceptLoop)
	h.s.goTracked(h.pingLoop)
	h.s.goTracked(h.flushLoop)
	if err := h.http.Serve(sl); err != nil && !errors.Is(err, http.ErrServerClosed) && h.s.running() {
		h.s.log.Error().Err(err).Msg("client listener failed")
	}
}

// shutdown stops accepting clients and tells each connected client why it
// is being disconnected.
func (h *clientHub) shutdown(reason protocol.Reason, msg string) {
	h.http.Close()
	for _, c := range h.snapshot() {
		c.close(reason, msg, nil)
	}
}

// abort closes every client connection at once.
func (h *clientHub) abort() {
	h.http.Close()
	for _, c := range h.snapshot() {
		c.close(protocol.ReasonShutdown, "server closed", nil)
		c.conn.NetConn().Close()
	}
}

func (h *clientHub) snapshot() []*client {
	h.mu.Lock()
	defer h.mu.Unlock()
	cs := make([]*client, 0, len(h.clients))
	for _, c := range h.clients {
		cs = append(cs, c)
	}
	return cs
}

func (h *clientHub) lookup(id uint64) *client {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clients[id]
}

// pingLoop pings every client at a third of the read timeout; a pong
// extends the client's read deadline.
func (h *clientHub) pingLoop() {
	t := time.NewTicker(h.cfg.ReadTimeout.D() / 3)
	defer t.Stop()
	for {
		select {
		case <-h.s.ctx.Done():
			return
		case <-t.C:
		}
		for _, c := range h.snapshot() {
			c.ping()
		}
	}
}

// flushLoop writes the queues of dirty clients until the server stops;
// then writer goroutines take over the clients still dirty.
func (h *clientHub) flushLoop() {
	for {
		select {
		case <-h.fwake:
		case <-h.s.ctx.Done():
			h.fmu.Lock()
			h.fstopped = true
			left := h.dirty
			h.dirty = nil
			h.fmu.Unlock()
			for _, c := range left {
				h.s.goTracked(c.writeLoop)
			}
			return
		}
		h.fmu.Lock()
		batch := h.dirty
		h.dirty = h.spare[:0]
		h.fmu.Unlock()
		for _, c := range batch {
			c.flush()
		}
		clear(batch)
		h.fmu.Lock()
		h.spare = batch[:0]
		h.fmu.Unlock()
	}
}

// markDirty hands c, whose writing flag the caller set, to the flusher
// (or, once it has ended, to a writer goroutine).
func (h *clientHub) markDirty(c *client) {
	h.fmu.Lock()
	if h.fstopped {
		h.fmu.Unlock()
		h.s.goTracked(c.writeLoop)
		return
	}
	wasEmpty := len(h.dirty) == 0
	h.dirty = append(h.dirty, c)
	h.fmu.Unlock()
	if wasEmpty {
		select {
		case h.fwake <- struct{}{}:
		default:
		}
	}
}

// serveWS upgrades a game client, admits or refuses it, and hands it to its
// own read goroutine (so the HTTP handler's stack is released).
func (h *clientHub) serveWS(w http.ResponseWriter, r *http.Request) {
	s := h.s
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "cloudrift: game clients connect with a WebSocket upgrade", http.StatusUpgradeRequired)
		return
	}
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug().Err(err).Str("remote_addr", r.RemoteAddr).Msg("client upgrade failed")
		return
	}
	id := h.idBase | (h.seq.Add(1) & 0xffff_ffff)
	cc, _ := conn.NetConn().(*clientConn)
	c := &client{
		h:       h,
		id:      id,
		ref:     plugins.ClientRef{Server: s.id, ID: id},
		conn:    conn,
		addr:    r.RemoteAddr,
		cc:      cc,
		limiter: rate.NewLimiter(rate.Limit(h.cfg.Rate), h.cfg.Burst),
	}
	refuse := func(reason protocol.Reason, msg string) {
		s.log.Warn().Str("remote_addr", c.addr).Str("reason", reason.String()).Str("detail", msg).Msg("refused a client")
		c.writeClose(reason, msg)
		conn.Close()
	}
	if !s.running() {
		refuse(protocol.ReasonShutdown, "server shutting down")
		return
	}
	if n := h.count.Add(1); n > int64(h.cfg.MaxClients) {
		h.count.Add(-1)
		refuse(protocol.ReasonServerFull, fmt.Sprintf("server holds its maximum of %d clients", h.cfg.MaxClients))
		return
	}
	c.info = plugins.ClientInfo{Ref: c.ref, RemoteAddr: c.addr, Header: r.Header.Clone(), Query: r.URL.Query()}
	if err := s.hooks.authenticate(c.info); err != nil {
		h.count.Add(-1)
		refuse(protocol.ReasonAuthRefused, err.Error())
		return
	}
	// The welcome goes first through the queue, so no message routed to
	// the client can overtake it.
	welcome := protocol.ClientWelcome{ServerID: s.id, ClientID: id, MaxMessage: uint32(h.cfg.MaxMessageBytes)}
	c.enqueue(protocol.AppendWS(nil, protocol.KindClientWelcome, 0, welcome.AppendTo(nil)))
	h.mu.Lock()
	if !s.running() {
		h.mu.Unlock()
		h.count.Add(-1)
		c.close(protocol.ReasonShutdown, "server shutting down", nil)
		return
	}
	h.clients[id] = c
	h.mu.Unlock()
	s.goTracked(c.readLoop)
}

func (h *clientHub) remove(c *client) {
	h.mu.Lock()
	if h.clients[c.id] == c {
		delete(h.clients, c.id)
		h.count.Add(-1)
	}
	h.mu.Unlock()
}

// client is one game client on this external server. It implements
// plugins.Client.
type client struct {
	h       *clientHub
	id      uint64
	ref     plugins.ClientRef
	conn    *websocket.Conn
	cc      *clientConn // conn's socket; nil only for a conn this package did not accept
	addr    string
	info    plugins.ClientInfo
	limiter *rate.Limiter

	mu      sync.Mutex // guards the fields below
	queue   [][]byte   // whole client messages waiting to be written
	queued  int        // bytes in queue
	writing bool       // the flusher or a writer goroutine owns the queue
	closing bool       // a Close is queued or written: accept no more sends
	reason  *plugins.CloseError
	flushed chan struct{} // closed once our Close is written (or failed)
}

var _ plugins.Client = (*client)(nil)

func (c *client) Ref() plugins.ClientRef   { return c.ref }
func (c *client) Info() plugins.ClientInfo { return c.info }
func (c *client) RemoteAddr() string       { return c.addr }

// Send implements plugins.Client.
func (c *client) Send(tag uint16, payload []byte) error {
	return c.enqueue(protocol.AppendWS(make([]byte, 0, protocol.WSHeaderSize+len(payload)), protocol.KindUser, tag, payload))
}

func (c *client) enqueue(msg []byte) error {
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
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		c.h.markDirty(c)
	}
	return nil
}

// flush writes c's queue for the flusher: everything queued in one
// non-blocking write. What the socket does not take at once, a Close, and
// whatever else needs to block go to a writer goroutine; messages queued
// meanwhile make c dirty again.
func (c *client) flush() {
	c.mu.Lock()
	batch := c.queue
	switch {
	case len(batch) == 0: // the client went away meanwhile
		c.writing = false
		c.mu.Unlock()
		return
	case c.closing || c.cc == nil:
		c.h.s.goTracked(c.writeLoop)
		c.mu.Unlock()
		return
	}
	queued := c.queued
	c.queue, c.queued = nil, 0
	c.mu.Unlock()
	wrote, rest, err := c.cc.tryWrite(batch)
	if err != nil {
		c.writeFailed(err)
		return
	}
	c.mu.Lock()
	if !wrote {
		// A blocking write holds the connection (a ping to a full
		// socket): the flusher does not wait for it; a writer does.
		c.queue = append(batch, c.queue...)
		c.queued += queued
		c.h.s.goTracked(c.writeLoop)
		c.mu.Unlock()
		return
	}
	switch {
	case rest || c.closing:
		c.h.s.goTracked(c.writeLoop)
	case len(c.queue) > 0:
		c.mu.Unlock()
		c.h.markDirty(c)
		return
	default:
		c.writing = false
	}
	c.mu.Unlock()
}

// ping sends a WebSocket ping without waiting: to a client whose
// connection is busy (a write in progress, or part of a frame still to
// go) it goes with the next batch, so one slow client never delays the
// pings of the others (and their read deadlines).
func (c *client) ping() {
	if c.cc == nil || c.cc.nb == nil { // no non-blocking writes here
		c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.h.cfg.WriteTimeout.D()))
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
func (c *client) startWriterLocked() {
	if c.writing {
		return
	}
	c.writing = true
	c.h.s.goTracked(c.writeLoop)
}

// Kick implements plugins.Client.
func (c *client) Kick(message string) {
	c.close(protocol.ReasonKicked, message, nil)
}

// close ends the session: pending messages are dropped, the client is sent
// a Close with the reason, then a WebSocket close frame, and the
// connection closes, which ends the read loop. The first reason wins.
func (c *client) close(reason protocol.Reason, msg string, err error) {
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
func (c *client) closedByPeer(reason protocol.Reason, msg string, err error) {
	c.mu.Lock()
	if !c.closing {
		c.closing = true
		c.reason = &plugins.CloseError{Reason: reason, ByPeer: true, Message: msg, Err: err}
		c.queue = nil
	}
	c.mu.Unlock()
}

func (c *client) closeReason() *plugins.CloseError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// writeLoop writes queued messages until the queue is empty, then ends.
// Everything queued at once goes out in one write: the connection is corked
// while gorilla frames the batch, then flushed.
func (c *client) writeLoop() {
	wt := c.h.cfg.WriteTimeout.D()
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
				c.mu.Unlock()
				close(flushed)
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
func (c *client) writeFailed(err error) {
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
	if flushed != nil {
		close(flushed)
	}
}

// writeClose tells the client why it is being disconnected: a KindClose
// message, then a WebSocket close frame. Callers own the write side.
func (c *client) writeClose(reason protocol.Reason, msg string) {
	wt := c.h.cfg.WriteTimeout.D()
	cl := protocol.Close{Reason: reason, Message: msg}
	c.conn.SetWriteDeadline(time.Now().Add(wt))
	c.conn.WriteMessage(websocket.BinaryMessage, protocol.AppendWS(nil, protocol.KindClose, 0, cl.AppendTo(nil)))
	code := websocket.ClosePolicyViolation
	switch reason {
	case protocol.ReasonMessageTooLarge:
		code = websocket.CloseMessageTooBig
	case protocol.ReasonServerFull:
		code = websocket.CloseTryAgainLater
	case protocol.ReasonShutdown:
		code = websocket.CloseGoingAway
	}
	text := reason.String()
	if len(text) > 120 {
		text = text[:120]
	}
	c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(wt))
}

// readLoop reads the client's messages and hands them to the plugins, in
// order, until the session ends; then it reports the disconnect.
func (c *client) readLoop() {
	h := c.h
	s := h.s
	rt := h.cfg.ReadTimeout.D()
	c.conn.SetPongHandler(func(string) error {
		if !c.isClosing() {
			c.conn.SetReadDeadline(time.Now().Add(rt))
		}
		return nil
	})
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

func (c *client) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// halfClose ends this side's writes once the Close is out, but keeps the
// connection readable: closing it outright while the client still sends (a
// pong, its own close frame) makes the kernel answer with a reset, which
// discards the Close before the client has read it.
func (c *client) halfClose() {
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
func (c *client) linger() {
	c.conn.SetReadDeadline(time.Now().Add(clientLinger))
	for i := 0; i < 1000; i++ {
		if _, _, err := c.conn.NextReader(); err != nil {
			return
		}
	}
}

// readOne reads and dispatches one message; false ends the session.
func (c *client) readOne(rt time.Duration) bool {
	h := c.h
	if c.isClosing() {
		return false
	}
	c.conn.SetReadDeadline(time.Now().Add(rt))
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
	if !c.limiter.Allow() {
		c.close(protocol.ReasonRateLimited, fmt.Sprintf("more than %d messages/s (burst %d)", h.cfg.Rate, h.cfg.Burst), nil)
		return false
	}
	switch f.Kind {
	case protocol.KindUser:
		h.s.hooks.clientMessage(c, plugins.Message{Tag: f.Tag, Payload: f.Payload})
	default:
		if protocol.IsExtensionKind(f.Kind) {
			if err := h.s.hooks.clientFrame(c, f); err != nil {
				c.close(protocol.ReasonProtocol, fmt.Sprintf("bad %s message", f.Kind), err)
				return false
			}
			return true
		}
		c.close(protocol.ReasonProtocol, fmt.Sprintf("unexpected message kind %s from a client", f.Kind), nil)
		return false
	}
	return true
}

func (c *client) readFailed(err error) {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		c.closedByPeer(protocol.ReasonNone, fmt.Sprintf("client closed (%d %s)", ce.Code, ce.Text), nil)
	case errors.As(err, &ne) && ne.Timeout():
		c.close(protocol.ReasonReadTimeout, fmt.Sprintf("silent for %s", c.h.cfg.ReadTimeout.D()), nil)
	default:
		c.closedByPeer(protocol.ReasonIO, "connection failed", err)
	}
}

// sniffListener hands HTTP connections to the client HTTP server and
// refuses anything else (such as a server link dialling an external port)
// with a logged reason.
type sniffListener struct {
	net.Listener
	s     *Server
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newSniffListener(s *Server, ln net.Listener) *sniffListener {
	return &sniffListener{Listener: ln, s: s, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *sniffListener) acceptLoop() {
	defer l.Close()
	var delay time.Duration
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			if !l.s.running() || errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			if !sleepCtx(l.s.ctx, delay) {
				return
			}
			continue
		}
		delay = 0
		l.s.goTracked(func() { l.sniff(conn) })
	}
}

func (l *sniffListener) sniff(conn net.Conn) {
	s := l.s
	conn.SetReadDeadline(time.Now().Add(s.links.HandshakeTimeout.D()))
	var first [4]byte
	if _, err := io.ReadFull(conn, first[:]); err != nil {
		conn.Close()
		return
	}
	conn.SetReadDeadline(time.Time{})
	if !protocol.LooksLikeHTTP(first[:]) {
		s.refused.Add(1)
		reason := protocol.ReasonProtocol
		msg := "external groups accept game clients (WebSocket) only, never servers"
		if binary.BigEndian.Uint32(first[:]) < uint32(s.links.MaxFrame) {
			s.log.Warn().Str("remote_addr", conn.RemoteAddr().String()).Str("reason", reason.String()).
				Msg("refused a server link on an external port: " + msg)
		} else {
			s.log.Warn().Str("remote_addr", conn.RemoteAddr().String()).Str("reason", reason.String()).
				Msg("refused a connection that is neither HTTP nor a server link")
		}
		writeClose(conn, reason, msg)
		conn.Close()
		return
	}
	pc := newClientConn(conn, first[:], &l.s.clients.wbufs)
	select {
	case l.conns <- pc:
	case <-l.done:
		conn.Close()
	}
}

func (l *sniffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *sniffListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}

// clientConn is a game client's connection: it replays the bytes the
// sniffer read, and can be corked so that a batch of WebSocket frames goes
// out in one write. A nil *clientConn is valid and never corks.
type clientConn struct {
	net.Conn
	prefix *bytes.Reader
	bufs   *sync.Pool // of *[]byte, shared by the hub's clients

	nb *nonblockWriter // of Conn, when it is a socket; nil otherwise

	mu     sync.Mutex // guards corked, buf and tail; held across a flush
	corked bool
	buf    *[]byte
	tail   []byte // the unwritten rest of a frame tryWrite began

	pingDue atomic.Bool // a ping waits for the write that held the connection
}

func newClientConn(conn net.Conn, prefix []byte, bufs *sync.Pool) *clientConn {
	c := &clientConn{Conn: conn, prefix: bytes.NewReader(prefix), bufs: bufs}
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.nb = newNonblockWriter(raw)
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
// connection takes the ping into its batch.
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
