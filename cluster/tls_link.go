package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/protocol"
)

// errNotTLS is the refusal of a plain connection on a port whose links
// use TLS.
var errNotTLS = errors.New("this server's links use TLS (links.tls) and the peer spoke plain TCP: every server of a system needs the same links.tls")

// dialTLS runs the client side of TLS on a dialled link connection, within
// the connection's deadline.
func (lt *linkTLS) dialTLS(ctx context.Context, conn net.Conn, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(conn, lt.dialConfig(host))
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return tlsConn{tc}, nil
}

// acceptTLS runs the server side of TLS on an accepted link connection
// whose first bytes, already read, are first. It returns errNotTLS for a
// connection that does not open with a TLS handshake, or the TLS error.
func (lt *linkTLS) acceptTLS(conn net.Conn, first []byte) (net.Conn, error) {
	if !looksLikeTLS(first) {
		return nil, errNotTLS
	}
	tc := tls.Server(&prefixConn{Conn: conn, prefix: first}, lt.accp)
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	return tlsConn{tc}, nil
}

// refuseTLS logs (sampled) why an accepted link failed TLS. A plain peer
// is told in a plain Close frame it can read; a TLS failure has already
// sent its alert.
func (a *acceptor) refuseTLS(log *zerolog.Logger, conn net.Conn, err error) {
	s := a.s
	if errors.Is(err, errNotTLS) {
		s.refuse(protocol.ReasonProtocol)
		sampledWarn(log, a.logs, "not TLS").Str("reason", "not TLS").Msg("refused a connection: " + err.Error())
		writeClose(conn, protocol.ReasonProtocol, err.Error())
		return
	}
	s.refuse(protocol.ReasonAuth)
	reason := tlsReason(err)
	sampledWarn(log, a.logs, reason).Str("reason", reason).Err(err).Msg("refused a connection: TLS handshake failed")
}

// tlsReason names why a TLS handshake failed, for logs and their sampling:
// an operator tells an expired certificate from one of another CA at once.
func tlsReason(err error) string {
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	switch {
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "tls: certificate expired or not yet valid"
	case errors.As(err, &unknown):
		return "tls: certificate signed by an unknown authority"
	case errors.As(err, &host):
		return "tls: certificate not valid for the advertised host"
	case errors.As(err, new(x509.CertificateInvalidError)):
		return "tls: invalid certificate"
	}
	return "tls"
}

// prefixConn replays bytes already read from Conn before reading more.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
