package cluster

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/cloudrift/cloudrift/internal/backoff"
	"github.com/cloudrift/cloudrift/protocol"
)

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
	failures := 0
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			if !l.s.running() || errors.Is(err, net.ErrClosed) {
				return
			}
			failures++
			if !backoff.Sleep(l.s.ctx, backoff.Policy{Min: acceptRetryMin, Max: acceptRetryMax}.Delay(failures)) {
				return
			}
			continue
		}
		failures = 0
		if err := l.s.clients.gate.enter(conn); err != nil {
			l.s.refuse(protocol.ReasonServerFull)
			l.s.clients.warn("handshake cap").Str("remote_addr", conn.RemoteAddr().String()).
				Str("reason", "handshake cap").Str("detail", err.Error()).Msg("refused a connection")
			conn.Close()
			continue
		}
		if !l.s.goTracked(func() { l.sniff(conn) }) {
			l.s.clients.gate.leave(conn)
			conn.Close()
			return
		}
	}
}

func (l *sniffListener) sniff(conn net.Conn) {
	s := l.s
	conn.SetReadDeadline(time.Now().Add(s.links.HandshakeTimeout.Duration()))
	var first [4]byte
	if _, err := io.ReadFull(conn, first[:]); err != nil {
		s.clients.gate.leave(conn)
		conn.Close()
		return
	}
	conn.SetReadDeadline(time.Time{})
	prefix := first[:]
	if s.clientTLS != nil { // tls_clients.go
		tc, ok := l.startTLS(conn, prefix)
		if !ok {
			return
		}
		conn, prefix = tc, nil
	} else if !protocol.LooksLikeHTTP(first[:]) {
		s.refuse(protocol.ReasonProtocol)
		reason := protocol.ReasonProtocol
		msg := "external groups accept game clients (WebSocket) only, never servers"
		if binary.BigEndian.Uint32(first[:]) < uint32(s.links.MaxFrame) {
			s.clients.warn("server link on a client port").Str("remote_addr", conn.RemoteAddr().String()).Str("reason", reason.String()).
				Msg("refused a server link on an external port: " + msg)
		} else {
			s.clients.warn("not HTTP").Str("remote_addr", conn.RemoteAddr().String()).Str("reason", reason.String()).
				Msg("refused a connection that is neither HTTP nor a server link")
		}
		writeClose(conn, reason, msg)
		s.clients.gate.leave(conn)
		conn.Close()
		return
	}
	// The connection stays in the gate until HTTP upgrades or closes it
	// (clientHub.connState).
	pc := newClientConn(conn, prefix, &l.s.clients.wbufs, l.s.clients.readBufs())
	select {
	case l.conns <- pc:
	case <-l.done:
		s.clients.gate.leave(gateKey(conn))
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
