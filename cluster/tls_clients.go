package cluster

import (
	"crypto/tls"
	"io"
	"net"
	"time"

	"github.com/cloudrift/cloudrift/protocol"
)

// wssRefusal answers a plain HTTP or WebSocket client on a client port that
// serves wss:// only.
const wssRefusal = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" +
	"cloudrift: this port serves wss:// (TLS) only\n"

// startTLS runs the server side of TLS on a client port with clients.tls,
// for a connection whose first bytes, already read, are first. A client
// port with TLS serves wss:// only: a plain HTTP or WebSocket client gets
// an HTTP 400 that says so, a server link its Close frame, and anything
// else is closed, each with a logged (sampled) reason. On refusal the
// connection has left the gate and is closed, and ok is false.
func (l *sniffListener) startTLS(conn net.Conn, first []byte) (tc net.Conn, ok bool) {
	h := l.s.clients
	refuse := func() (net.Conn, bool) {
		l.s.refuse(protocol.ReasonProtocol)
		h.gate.leave(conn)
		conn.Close()
		return nil, false
	}
	addr := conn.RemoteAddr().String()
	if !looksLikeTLS(first) {
		switch {
		case protocol.LooksLikeHTTP(first):
			h.warn("not TLS").Str("remote_addr", addr).Str("reason", "not TLS").
				Msg("refused a plain HTTP or ws:// client: this client port serves wss:// only (clients.tls)")
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(conn, wssRefusal)
		default:
			h.warn("not TLS").Str("remote_addr", addr).Str("reason", "not TLS").
				Msg("refused a connection that is not TLS on a wss:// client port")
			writeClose(conn, protocol.ReasonProtocol, "external groups accept game clients (WebSocket) only, never servers")
		}
		return refuse()
	}
	conn.SetDeadline(time.Now().Add(l.s.links.HandshakeTimeout.Duration()))
	t := tls.Server(&prefixConn{Conn: conn, prefix: first}, l.s.clientTLS)
	if err := t.Handshake(); err != nil {
		reason := tlsReason(err)
		h.warn(reason).Str("remote_addr", addr).Str("reason", reason).Err(err).Msg("refused a client: TLS handshake failed")
		return refuse()
	}
	conn.SetDeadline(time.Time{})
	return tlsConn{t}, true
}

// gateKey returns the connection the gate admitted under c: the socket
// under a wss connection, c itself otherwise.
func gateKey(c net.Conn) net.Conn {
	if w, ok := c.(tlsConn); ok {
		return w.NetConn()
	}
	return c
}
