package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/logsample"
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
	// plainUpgrader is upgrader for plainReads: gorilla's read buffer as
	// it was before readAhead.
	plainUpgrader websocket.Upgrader
	http          *http.Server
	idBase        uint64        // random high bits, so refs of an earlier incarnation miss
	seq           atomic.Uint64 // low bits of the next client ID
	count         atomic.Int64  // clients connected
	msgIn         atomic.Uint64 // messages received from clients
	msgOut        atomic.Uint64 // messages queued to clients
	bufs          sync.Pool     // read buffers of MaxMessageBytes+header+1
	wbufs         sync.Pool     // write batches of corked connections (*[]byte)
	rbufs         sync.Pool     // read chunks of readAheadSize (*[]byte)
	// plainReads makes connections accepted from now on read their socket
	// directly, as before readAhead; for benchmarks that compare the two.
	plainReads atomic.Bool
	gate       *handshakeGate     // connections not yet upgraded
	logs       *logsample.Sampler // refusals and protocol errors, sampled per reason

	mu      sync.Mutex // guards clients
	clients map[uint64]*session

	// The flusher writes what is sent to clients, in non-blocking writes,
	// so that senders (hooks, often holding their own locks) never wait on
	// a socket and no goroutine starts per message.
	fwake    chan struct{} // cap 1: dirty went from empty to non-empty
	fmu      sync.Mutex    // guards the fields below
	dirty    []*session    // clients with queued messages the flusher owns
	spare    []*session
	fstopped bool // the flusher has ended: writers take over
}

func newClientHub(s *Server) *clientHub {
	h := &clientHub{
		s:       s,
		cfg:     s.group.Clients,
		idBase:  (s.incarnation & 0xffff_ffff) << 32,
		clients: make(map[uint64]*session),
		fwake:   make(chan struct{}, 1),
		gate:    newHandshakeGate(maxClientHandshakes, maxClientHandshakesPerAddr),
		logs:    s.newRefusalSampler("clients"),
	}
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: s.links.HandshakeTimeout.Duration(),
		// gorilla's read buffer only stages what readAhead read in
		// chunks: the smallest that holds a control frame whole (125
		// bytes and its header) keeps idle clients small.
		ReadBufferSize:  256,
		WriteBufferSize: 1024,
		WriteBufferPool: &sync.Pool{},
		// serveWS checks the origin first, to log why it refuses one.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	// Connections that read their socket directly (plainReads) read it
	// through gorilla's buffer, as before readAhead.
	h.plainUpgrader = h.upgrader
	h.plainUpgrader.ReadBufferSize = 512
	// Built here, not in serve, so shutdown and abort may close it at any
	// time after New without racing its creation.
	h.http = &http.Server{
		Handler:           http.HandlerFunc(h.route),
		ReadHeaderTimeout: s.links.HandshakeTimeout.Duration(),
		IdleTimeout:       s.links.HandshakeTimeout.Duration(),
		ConnState:         h.connState,
	}
	size := h.cfg.MaxMessageBytes + protocol.WSHeaderSize + 1
	h.bufs.New = func() any { b := make([]byte, size); return &b }
	h.wbufs.New = func() any { b := make([]byte, 0, 16<<10); return &b }
	h.rbufs.New = func() any { b := make([]byte, readAheadSize); return &b }
	return h
}

// serve runs the HTTP server on ln until it closes. Connections that do
// not start with an HTTP request (a server link dialling an external port)
// are refused with a logged reason before HTTP sees them.
func (h *clientHub) serve(ln net.Listener) {
	sl := newSniffListener(h.s, ln)
	if !h.s.goTracked(sl.acceptLoop) || !h.s.goTracked(h.pingLoop) || !h.s.goTracked(h.flushLoop) {
		sl.Close() // the server is closing
		return
	}
	defer h.logs.Stop()
	if err := h.http.Serve(sl); err != nil && !errors.Is(err, http.ErrServerClosed) && h.s.running() {
		h.s.log.Error().Err(err).Msg("client listener failed")
	}
}

// connState takes a connection out of the handshake gate once it is
// upgraded, closed, or idle after a request that was not an upgrade (idle
// connections close after links.handshakeTimeout).
func (h *clientHub) connState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateHijacked, http.StateClosed, http.StateIdle:
		if cc, ok := c.(*clientConn); ok {
			h.gate.leave(gateKey(cc.Conn))
		}
	}
}

// warn returns a sampled warning event for a refusal (see sampledWarn).
func (h *clientHub) warn(reason string) *zerolog.Event { return sampledWarn(&h.s.log, h.logs, reason) }

// route serves the configured path and the directory (GET /servers and
// /load, directory.go; config refuses them as clients.path), and answers
// 404 elsewhere.
func (h *clientHub) route(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == h.cfg.Path:
		h.serveWS(w, r)
	case p == DirectoryPath || p == LoadPath:
		h.serveDirectory(w, r)
	default:
		http.NotFound(w, r)
	}
}

// originAllowed reports whether a request may open a client connection:
// one without an Origin header (not a browser), one from a page on the
// same host as the request (any port: a game's page is usually served
// from another port than the client port), or one from an origin
// clients.allowedOrigins lists.
func (h *clientHub) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range h.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	return err == nil && u.Hostname() != "" && strings.EqualFold(u.Hostname(), hostname(r.Host))
}

// hostname is host without its port.
func hostname(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
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

func (h *clientHub) snapshot() []*session {
	h.mu.Lock()
	defer h.mu.Unlock()
	cs := make([]*session, 0, len(h.clients))
	for _, c := range h.clients {
		cs = append(cs, c)
	}
	return cs
}

func (h *clientHub) lookup(id uint64) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clients[id]
}

// pingLoop pings every client at a third of the read timeout; a pong
// extends the client's read deadline.
func (h *clientHub) pingLoop() {
	t := time.NewTicker(h.cfg.ReadTimeout.Duration() / 3)
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

// serveWS upgrades a game client, admits or refuses it, and hands it to its
// own read goroutine (so the HTTP handler's stack is released).
func (h *clientHub) serveWS(w http.ResponseWriter, r *http.Request) {
	s := h.s
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "cloudrift: game clients connect with a WebSocket upgrade", http.StatusUpgradeRequired)
		return
	}
	if !h.originAllowed(r) {
		h.warn("origin not allowed").Str("remote_addr", r.RemoteAddr).Str("reason", "origin not allowed").
			Str("origin", r.Header.Get("Origin")).Msg("refused a client: its origin is not in clients.allowedOrigins")
		http.Error(w, "cloudrift: origin not allowed", http.StatusForbidden)
		return
	}
	up := &h.upgrader
	if h.plainReads.Load() {
		up = &h.plainUpgrader
	}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		h.warn("upgrade failed").Err(err).Str("remote_addr", r.RemoteAddr).Str("reason", "upgrade failed").Msg("client upgrade failed")
		return
	}
	id := h.idBase | (h.seq.Add(1) & 0xffff_ffff)
	cc, _ := conn.NetConn().(*clientConn)
	budget, abuse := newLimiters(h.cfg.Rate, h.cfg.Burst)
	c := &session{
		h:       h,
		id:      id,
		ref:     plugins.ClientRef{Server: s.id, ID: id},
		conn:    conn,
		addr:    r.RemoteAddr,
		cc:      cc,
		limiter: budget,
		abuse:   abuse,
	}
	refuse := func(reason protocol.Reason, msg string) {
		h.warn(reason.String()).Str("remote_addr", c.addr).Str("reason", reason.String()).Str("detail", msg).Msg("refused a client")
		c.writeClose(reason, msg)
		conn.Close()
	}
	if !s.running() {
		refuse(protocol.ReasonShutdown, "server shutting down")
		return
	}
	if s.draining.Load() {
		refuse(protocol.ReasonDraining, drainRefusal)
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
	h.mu.Lock()
	if !s.running() || s.draining.Load() {
		h.mu.Unlock()
		h.count.Add(-1)
		if s.draining.Load() {
			refuse(protocol.ReasonDraining, drainRefusal)
		} else {
			refuse(protocol.ReasonShutdown, "server shutting down")
		}
		return
	}
	// Registered and welcomed under h.mu: a Shutdown that begins after
	// the check above finds the client and closes it with a reason, and no
	// message routed to it (lookup takes h.mu) can overtake the welcome.
	//
	// Its read loop starts under h.mu too. Shutdown and Close take h.mu for
	// their snapshot of the clients before they stop the goroutine
	// tracker, so the loop always starts, and the plugins see the client
	// connect and go.
	h.clients[id] = c
	welcome := protocol.ClientWelcome{ServerID: s.id, ClientID: id, MaxMessage: uint32(h.cfg.MaxMessageBytes)}
	c.enqueue(protocol.AppendWS(nil, protocol.KindClientWelcome, 0, welcome.AppendTo(nil)))
	started := s.goTracked(c.readLoop)
	h.mu.Unlock()
	if !started {
		h.remove(c)
		c.close(protocol.ReasonShutdown, "server shutting down", nil)
		c.conn.Close()
	}
}

// readBufs returns the pool new connections read their socket through
// (see readAhead), or nil for direct reads.
func (h *clientHub) readBufs() *sync.Pool {
	if h.plainReads.Load() {
		return nil
	}
	return &h.rbufs
}

func (h *clientHub) remove(c *session) {
	h.mu.Lock()
	if h.clients[c.id] == c {
		delete(h.clients, c.id)
		h.count.Add(-1)
	}
	h.mu.Unlock()
}
