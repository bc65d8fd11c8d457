package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/internal/backoff"
	"github.com/cloudrift/cloudrift/internal/logsample"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
)

// The handshake (see protocol/handshake.go):
//
//	dialer   → HELLO     version, system, group, ID, incarnation, nonce
//	acceptor → CHALLENGE version, ID, group, incarnation, nonce
//	dialer   → AUTH      MAC_d
//	acceptor → WELCOME   MAC_a   (only once MAC_d verified)
//
// MAC_d and MAC_a are HMAC-SHA256 over HELLO and CHALLENGE with the system
// secret, under different labels; each side proves it knows the secret
// without sending it. The dialer proves first, so a stranger who reaches a
// listening port never obtains a MAC to test guessed secrets against.
// Either side may answer with CLOSE (reason, message) instead. Until the
// peer is authenticated, frames are limited to protocol.MaxHandshakeFrame.

// httpRefusal answers an HTTP or WebSocket client that reached a server port.
const httpRefusal = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" +
	"cloudrift: this port speaks the server-link protocol only; game clients connect to an external group's port\n"

// dial connects to r and runs the dialer's side of the handshake, over
// r's link socket when this host has it (localsock.go), else over TCP.
// On success the link is ready to run; its connection has no deadline.
func (s *Server) dial(ctx context.Context, r *remote) (*link, error) {
	addr := r.Address()
	d := net.Dialer{Timeout: s.links.HandshakeTimeout.Duration()}
	if conn, ok := s.dialLocal(ctx, &d, addr); ok {
		l, err := s.dialedHandshake(ctx, conn, r, addr)
		if err == nil || ctx.Err() != nil {
			return l, err
		}
		// A socket that leads to another server, or one going away: TCP
		// reaches the address the registry lists, and has the last word.
		s.log.Debug().Err(err).Str("peer", r.id).Msg("handshake over the link socket failed; dialling over TCP")
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return s.dialedHandshake(ctx, conn, r, addr)
}

// dialedHandshake runs the dialer's side of the handshake on conn, just
// dialled to r at addr; it closes conn when the handshake fails.
func (s *Server) dialedHandshake(ctx context.Context, conn net.Conn, r *remote, addr string) (*link, error) {
	if !s.trackConn(conn) {
		conn.Close()
		return nil, ErrServerClosed
	}
	defer s.untrackConn(conn)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	timeout := s.links.HandshakeTimeout.Duration()
	nc, err := conn, error(nil)
	if s.linkTLS != nil {
		conn.SetDeadline(time.Now().Add(timeout))
		nc, err = s.linkTLS.dialTLS(ctx, conn, addr)
	}
	var l *link
	if err == nil {
		l, err = s.dialHandshake(nc, r, timeout)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("dial %s at %s over %s: %w", r.id, addr, transportOf(conn), err)
	}
	return l, nil
}

func (s *Server) dialHandshake(conn net.Conn, r *remote, timeout time.Duration) (*link, error) {
	conn.SetDeadline(time.Now().Add(timeout))
	nonce, err := protocol.NewNonce()
	if err != nil {
		return nil, err
	}
	hello := protocol.Hello{
		Version:     protocol.Version,
		System:      s.sys.System,
		Group:       s.group.Name,
		ServerID:    s.id,
		Incarnation: s.incarnation,
		Nonce:       nonce,
	}
	helloBytes := hello.AppendTo(nil)
	if _, err := conn.Write(protocol.AppendFrame(nil, protocol.KindHello, 0, helloBytes)); err != nil {
		return nil, err
	}
	rd := protocol.NewReader(conn, protocol.MaxHandshakeFrame)
	f, err := expect(rd, protocol.KindChallenge)
	if err != nil {
		return nil, err
	}
	if v, ok := protocol.PeekVersion(f.Payload); ok && v != protocol.Version {
		msg := fmt.Sprintf("protocol version %d, this server speaks %d", v, protocol.Version)
		return nil, s.refuseDialed(conn, protocol.ReasonVersion, msg, nil)
	}
	var ch protocol.Challenge
	if err := ch.Decode(f.Payload); err != nil {
		return nil, s.refuseDialed(conn, protocol.ReasonProtocol, "malformed challenge", err)
	}
	// The identity check comes before Auth: a server that is not the one
	// the registry lists gets no MAC.
	if ch.ServerID != r.id || ch.Group != r.g.name || ch.Incarnation != r.inc {
		msg := fmt.Sprintf("expected %s/%s incarnation %x, found %s/%s incarnation %x",
			r.g.name, r.id, r.inc, ch.Group, ch.ServerID, ch.Incarnation)
		return nil, s.refuseDialed(conn, protocol.ReasonUnknownPeer, msg, nil)
	}
	chBytes := ch.AppendTo(nil) // the payload as received: the encoding is canonical
	auth := protocol.Auth{MAC: protocol.AuthMAC(s.secret, helloBytes, chBytes)}
	if _, err := conn.Write(protocol.AppendFrame(nil, protocol.KindAuth, 0, auth.AppendTo(nil))); err != nil {
		return nil, err
	}
	f, err = expect(rd, protocol.KindWelcome)
	if err != nil {
		return nil, err
	}
	var w protocol.Welcome
	if err := w.Decode(f.Payload); err != nil {
		return nil, s.refuseDialed(conn, protocol.ReasonProtocol, "malformed welcome", err)
	}
	if !protocol.VerifyMAC(w.MAC, protocol.WelcomeMAC(s.secret, helloBytes, chBytes)) {
		return nil, s.refuseDialed(conn, protocol.ReasonAuth, "the acceptor could not prove it knows the system secret", nil)
	}
	rd.SetMaxFrame(s.links.MaxFrame)
	conn.SetDeadline(time.Time{})
	return newLink(s, r, conn, rd), nil
}

// expect reads the next handshake frame, which must be of kind want. A
// Close frame becomes an ErrRefused error carrying the peer's reason.
func expect(rd *protocol.Reader, want protocol.Kind) (protocol.Frame, error) {
	f, err := rd.Next()
	if err != nil {
		return f, fmt.Errorf("%w: waiting for %s: %w", ErrHandshake, want, err)
	}
	switch f.Kind {
	case want:
		return f, nil
	case protocol.KindClose:
		var c protocol.Close
		if err := c.Decode(f.Payload); err != nil {
			return f, fmt.Errorf("%w: malformed close: %w", ErrHandshake, err)
		}
		return f, fmt.Errorf("%w: %w", ErrRefused, &plugins.CloseError{Reason: c.Reason, ByPeer: true, Message: c.Message})
	}
	return f, fmt.Errorf("%w: got %s, want %s", ErrHandshake, f.Kind, want)
}

// refuseDialed tells the acceptor why the dialer gives up, and returns the
// matching error.
func (s *Server) refuseDialed(conn net.Conn, reason protocol.Reason, msg string, err error) error {
	writeClose(conn, reason, msg)
	return fmt.Errorf("%w: %w", ErrHandshake, &plugins.CloseError{Reason: reason, Message: msg, Err: err})
}

func writeClose(conn net.Conn, reason protocol.Reason, msg string) {
	c := protocol.Close{Reason: reason, Message: msg}
	conn.SetWriteDeadline(time.Now().Add(time.Second))
	conn.Write(protocol.AppendFrame(nil, protocol.KindClose, 0, c.AppendTo(nil)))
}

// acceptRetryMin and acceptRetryMax bound the waits of a listener whose
// Accept fails (out of file descriptors and the like).
const (
	acceptRetryMin = 5 * time.Millisecond
	acceptRetryMax = time.Second
)

// acceptor is what an accept loop shares with the handshakes it starts:
// the cap on unauthenticated connections and the sampler of refusal logs.
type acceptor struct {
	s    *Server
	gate *handshakeGate
	logs *logsample.Sampler
}

// sampledWarn returns a warning event on log for a refusal of the given
// reason, or nil (on which zerolog's methods do nothing) when logs drops it.
func sampledWarn(log *zerolog.Logger, logs *logsample.Sampler, reason string) *zerolog.Event {
	if !logs.Allow(reason) {
		return nil
	}
	return log.Warn()
}

// newRefusalSampler returns the sampler of a listener's refusal logs: the
// first few of each reason per window in full, then one summary line.
func (s *Server) newRefusalSampler(listener string) *logsample.Sampler {
	return &logsample.Sampler{Report: func(reason string, n int) {
		s.log.Warn().Str("listener", listener).Str("reason", reason).Int("suppressed", n).
			Dur("window", logsample.DefaultWindow).Msg("more connections refused for this reason than were logged")
	}}
}

// acceptLoop accepts connections from downstream servers until the
// listener closes.
func (s *Server) acceptLoop(ln net.Listener) {
	perAddr := maxLinkHandshakesPerAddr
	if ln.Addr().Network() == "unix" {
		// Every dialler of the link socket is a process of this host's
		// user, and none has an address of its own: a host starting more
		// servers at once than the per-address cap must not have some
		// refused there (they would link over TCP instead).
		perAddr = maxLinkHandshakes
	}
	a := &acceptor{s: s, gate: newHandshakeGate(maxLinkHandshakes, perAddr), logs: s.newRefusalSampler("links")}
	defer a.logs.Stop()
	failures := 0
	for {
		conn, err := ln.Accept()
		if err != nil {
			if !s.running() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, keep serving.
			failures++
			delay := backoff.Policy{Min: acceptRetryMin, Max: acceptRetryMax}.Delay(failures)
			s.log.Warn().Err(err).Dur("retry_in", delay).Msg("accept failed")
			if !backoff.Sleep(s.ctx, delay) {
				return
			}
			continue
		}
		failures = 0
		if err := a.gate.enter(conn); err != nil {
			s.refuse(protocol.ReasonServerFull)
			sampledWarn(&s.log, a.logs, "handshake cap").Str("remote_addr", conn.RemoteAddr().String()).
				Str("reason", "handshake cap").Str("detail", err.Error()).Msg("refused a connection")
			// A server that dialled in a burst learns why and redials.
			writeClose(conn, protocol.ReasonServerFull, err.Error())
			conn.Close()
			continue
		}
		if !s.trackConn(conn) {
			a.gate.leave(conn)
			conn.Close()
			return
		}
		if !s.goTracked(func() { a.serve(conn) }) {
			a.gate.leave(conn)
			s.untrackConn(conn)
			conn.Close()
			return
		}
	}
}

// serve runs the acceptor's side of the handshake, then the link.
func (a *acceptor) serve(conn net.Conn) {
	s := a.s
	l := a.handshake(conn)
	a.gate.leave(conn)
	s.untrackConn(conn)
	if l == nil {
		conn.Close()
		return
	}
	l.run()
}

// handshake returns the authenticated link, or nil after refusing the
// connection with a logged (sampled) reason.
func (a *acceptor) handshake(conn net.Conn) *link {
	s := a.s
	conn.SetDeadline(time.Now().Add(s.links.HandshakeTimeout.Duration()))
	log := s.log.With().Str("remote_addr", conn.RemoteAddr().String()).Logger()
	refuse := func(reason protocol.Reason, msg string, err error) *link {
		s.refuse(reason)
		sampledWarn(&log, a.logs, reason.String()).Str("reason", reason.String()).Str("detail", msg).AnErr("error", err).Msg("refused a connection")
		writeClose(conn, reason, msg)
		return nil
	}
	readFailed := func(stage string, err error) *link {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return refuse(protocol.ReasonHandshakeTimeout, "no "+stage+" within "+s.links.HandshakeTimeout.Duration().String(), nil)
		case errors.Is(err, protocol.ErrFrameTooLarge):
			return refuse(protocol.ReasonFrameTooLarge, "while waiting for "+stage, err)
		case errors.Is(err, protocol.ErrShortFrame):
			return refuse(protocol.ReasonProtocol, "while waiting for "+stage, err)
		}
		s.refuse(protocol.ReasonIO)
		sampledWarn(&log, a.logs, protocol.ReasonIO.String()).Str("reason", protocol.ReasonIO.String()).Err(err).
			Msg("connection failed during the handshake")
		return nil
	}

	var first [4]byte
	if _, err := io.ReadFull(conn, first[:]); err != nil {
		return readFailed("hello", err)
	}
	if protocol.LooksLikeHTTP(first[:]) {
		s.refuse(protocol.ReasonClientProtocol)
		sampledWarn(&log, a.logs, protocol.ReasonClientProtocol.String()).Str("reason", protocol.ReasonClientProtocol.String()).
			Msg("refused a connection: a game client (HTTP/WebSocket) reached a server port")
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(conn, httpRefusal)
		return nil
	}
	in := io.MultiReader(bytes.NewReader(first[:]), conn)
	switch {
	case s.linkTLS != nil: // tls_link.go
		tc, err := s.linkTLS.acceptTLS(conn, first[:])
		if err != nil {
			a.refuseTLS(&log, conn, err)
			return nil
		}
		conn, in = tc, tc
	case looksLikeTLS(first[:]):
		return refuse(protocol.ReasonProtocol, "the peer speaks TLS and this server's links do not (links.tls): every server of a system needs the same links.tls", nil)
	}
	rd := protocol.NewReader(in, protocol.MaxHandshakeFrame)
	f, err := rd.Next()
	if err != nil {
		return readFailed("hello", err)
	}
	if f.Kind != protocol.KindHello {
		return refuse(protocol.ReasonProtocol, fmt.Sprintf("expected hello, got %s", f.Kind), nil)
	}
	helloBytes := bytes.Clone(f.Payload)
	if v, ok := protocol.PeekVersion(helloBytes); ok && v != protocol.Version {
		return refuse(protocol.ReasonVersion, fmt.Sprintf("protocol version %d, this server speaks %d", v, protocol.Version), nil)
	}
	var hello protocol.Hello
	if err := hello.Decode(helloBytes); err != nil {
		return refuse(protocol.ReasonProtocol, "malformed hello", err)
	}
	log = log.With().Str("peer", hello.ServerID).Str("peer_group", hello.Group).Logger()
	switch {
	case hello.System != s.sys.System:
		return refuse(protocol.ReasonWrongSystem, fmt.Sprintf("system %q, this server belongs to %q", hello.System, s.sys.System), nil)
	case !s.topo.Accepts(s.group.Name, hello.Group):
		return refuse(protocol.ReasonNotDownstream, fmt.Sprintf("group %q does not connect to group %q", hello.Group, s.group.Name), nil)
	case hello.ServerID == "" || hello.ServerID == s.id:
		return refuse(protocol.ReasonProtocol, fmt.Sprintf("bad server ID %q", hello.ServerID), nil)
	}
	nonce, err := protocol.NewNonce()
	if err != nil {
		return refuse(protocol.ReasonIO, "no randomness", err)
	}
	ch := protocol.Challenge{
		Version:     protocol.Version,
		ServerID:    s.id,
		Group:       s.group.Name,
		Incarnation: s.incarnation,
		Nonce:       nonce,
	}
	chBytes := ch.AppendTo(nil)
	if _, err := conn.Write(protocol.AppendFrame(nil, protocol.KindChallenge, 0, chBytes)); err != nil {
		return readFailed("challenge write", err)
	}
	f, err = rd.Next()
	if err != nil {
		return readFailed("auth", err)
	}
	switch f.Kind {
	case protocol.KindAuth:
	case protocol.KindClose:
		var c protocol.Close
		_ = c.Decode(f.Payload)
		s.refuse(c.Reason)
		sampledWarn(&log, a.logs, "dialer gave up").Str("reason", c.Reason.String()).Str("detail", c.Message).Msg("the dialer gave up the handshake")
		return nil
	default:
		return refuse(protocol.ReasonProtocol, fmt.Sprintf("expected auth, got %s", f.Kind), nil)
	}
	var auth protocol.Auth
	if err := auth.Decode(f.Payload); err != nil {
		return refuse(protocol.ReasonProtocol, "malformed auth", err)
	}
	if !protocol.VerifyMAC(auth.MAC, protocol.AuthMAC(s.secret, helloBytes, chBytes)) {
		return refuse(protocol.ReasonAuth, "the dialer could not prove it knows the system secret", nil)
	}
	// Only now, the dialer authenticated, does this side prove itself.
	w := protocol.Welcome{MAC: protocol.WelcomeMAC(s.secret, helloBytes, chBytes)}
	if _, err := conn.Write(protocol.AppendFrame(nil, protocol.KindWelcome, 0, w.AppendTo(nil))); err != nil {
		return readFailed("welcome write", err)
	}
	rd.SetMaxFrame(s.links.MaxFrame)
	conn.SetDeadline(time.Time{})
	g := s.related[hello.Group]
	r := g.remoteForLink(hello.ServerID, hello.Incarnation, peerAddr(conn))
	return newLink(s, r, conn, rd)
}
