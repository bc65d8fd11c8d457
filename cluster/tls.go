package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/config"
)

// ErrTLSFiles is wrapped by New's error when a tls block's files cannot
// be read or parsed.
var ErrTLSFiles = errors.New("cluster: TLS files")

// certSource serves a certificate pair from PEM files. It reads them again
// when either file's size or modification time changes, so renewing a
// certificate in place needs no restart: each TLS handshake costs two
// stat calls, and a parse only after a change. A pair that fails to load
// (the key file not rewritten yet, say) leaves the last good one in use
// and is tried again at the next handshake.
type certSource struct {
	certFile, keyFile string
	log               *zerolog.Logger

	mu    sync.Mutex // guards the fields below
	cert  *tls.Certificate
	stamp [2]fileStamp // of certFile and keyFile when cert was read
	bad   [2]fileStamp // of the last pair that failed to load (logged once)
}

// fileStamp is what tells a rewritten file from the one read before.
type fileStamp struct {
	size int64
	mod  time.Time
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{size: fi.Size(), mod: fi.ModTime()}, nil
}

// newCertSource loads the pair once, so that a bad file fails at start.
func newCertSource(t config.TLS, log *zerolog.Logger) (*certSource, error) {
	c := &certSource{certFile: t.CertFile, keyFile: t.KeyFile, log: log}
	if _, err := c.get(); err != nil {
		return nil, err
	}
	return c, nil
}

// get returns the current certificate, read again if the files changed.
func (c *certSource) get() (*tls.Certificate, error) {
	cs, cerr := stampOf(c.certFile)
	ks, kerr := stampOf(c.keyFile)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := errors.Join(cerr, kerr); err != nil {
		if c.cert != nil {
			return c.cert, nil // a file being replaced: keep serving the last good pair
		}
		return nil, fmt.Errorf("%w: %w", ErrTLSFiles, err)
	}
	stamp := [2]fileStamp{cs, ks}
	if c.cert != nil && (stamp == c.stamp || stamp == c.bad) {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		if c.cert != nil {
			c.bad = stamp
			c.log.Warn().Err(err).Str("cert_file", c.certFile).Msg("TLS certificate files changed but do not load; still serving the previous certificate")
			return c.cert, nil
		}
		return nil, fmt.Errorf("%w: %s and %s: %w", ErrTLSFiles, c.certFile, c.keyFile, err)
	}
	if c.cert != nil {
		c.log.Info().Str("cert_file", c.certFile).Str("serial", serialOf(cert.Leaf)).
			Time("not_after", cert.Leaf.NotAfter).Msg("TLS certificate reloaded")
	}
	c.cert, c.stamp = &cert, stamp
	return c.cert, nil
}

func serialOf(leaf *x509.Certificate) string {
	if leaf == nil || leaf.SerialNumber == nil {
		return ""
	}
	return leaf.SerialNumber.Text(16)
}

// loadCAs reads a PEM file of CA certificates into a pool.
func loadCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTLSFiles, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrTLSFiles, path)
	}
	return pool, nil
}

// clientTLSConfig returns the TLS configuration of an external group's
// client port (clients.tls): the certificate comes from src at each
// handshake; players present none.
func clientTLSConfig(src *certSource) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12, // browsers and older SDKs
		NextProtos:     []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return src.get() },
	}
}

// linkTLS is the mutual TLS of server links (links.tls). Every server
// presents its certificate on both sides of a link and checks its peer's
// against the CA: the acceptor requires a client certificate, and the
// dialer checks the acceptor's certificate and its name (the host of the
// address the acceptor advertises in the registry, a DNS name or an IP
// SAN). TLS encrypts and binds the link to a certificate the CA signed;
// the HMAC handshake still runs inside it, proving membership of the
// system.
type linkTLS struct {
	src  *certSource
	cas  *x509.CertPool
	accp *tls.Config // the acceptor's, shared by every accepted link
}

func newLinkTLS(t config.TLS, log *zerolog.Logger) (*linkTLS, error) {
	src, err := newCertSource(t, log)
	if err != nil {
		return nil, err
	}
	cas, err := loadCAs(t.CAFile)
	if err != nil {
		return nil, err
	}
	lt := &linkTLS{src: src, cas: cas}
	lt.accp = &tls.Config{
		MinVersion:     tls.VersionTLS13, // every peer is a cloudrift server
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      cas,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return src.get() },
	}
	return lt, nil
}

// dialConfig returns the dialer's configuration for an acceptor whose
// advertised host is host.
func (lt *linkTLS) dialConfig(host string) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		RootCAs:              lt.cas,
		ServerName:           host,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return lt.src.get() },
	}
}

// tlsConn is a TLS connection of a link or a game client. Close closes
// the socket at once, without TLS's close_notify, which could wait up to
// 5s on a full socket: both protocols say goodbye in their own frames
// (a link's or a client's Close) before closing, and a truncated stream
// is no less detectable than a dropped one.
type tlsConn struct{ *tls.Conn }

func (c tlsConn) Close() error { return c.NetConn().Close() }

// looksLikeTLS reports whether the first bytes of a connection are a TLS
// handshake record (content type 22, major version 3).
func looksLikeTLS(first []byte) bool {
	return len(first) >= 2 && first[0] == 0x16 && first[1] == 0x03
}

// loadTLS reads the files of links.tls and of the group's clients.tls.
func (s *Server) loadTLS() error {
	if t := s.sys.Links.TLS; t.Enabled() {
		lt, err := newLinkTLS(t, &s.log)
		if err != nil {
			return fmt.Errorf("links.tls: %w", err)
		}
		s.linkTLS = lt
	}
	if t := s.group.Clients.TLS; t.Enabled() && s.group.Visibility == config.External {
		src, err := newCertSource(t, &s.log)
		if err != nil {
			return fmt.Errorf("group %q: clients.tls: %w", s.group.Name, err)
		}
		s.clientTLS = clientTLSConfig(src)
	}
	return nil
}
