package cluster_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/registry/embedded"
)

// logged reports whether one line of sys's logs holds every one of parts.
func logged(sys *clustertest.System, parts ...string) func() bool {
	return func() bool {
	lines:
		for _, line := range strings.Split(sys.Logs(), "\n") {
			for _, p := range parts {
				if !strings.Contains(line, p) {
					continue lines
				}
			}
			return true
		}
		return false
	}
}

// TLS runs over either transport of a link: TCP, and the link socket of
// servers of one host (Unix systems).
func TestLinksOverMutualTLS(t *testing.T) {
	t.Run("tcp", func(t *testing.T) { testLinksOverMutualTLS(t, config.SocketDirOff, "tcp") })
	if runtime.GOOS != "windows" {
		t.Run("unix", func(t *testing.T) { testLinksOverMutualTLS(t, t.TempDir(), "unix") })
	}
}

func testLinksOverMutualTLS(t *testing.T, socketDir, transport string) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "system")
	other := newTestCA(t, dir, "other")
	cfg := twoGroups()
	cfg.Links.TLS = ca.linkTLS(t, "server")
	cfg.Links.SocketDir = socketDir
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sys := newSystem(t, cfg)
	recv := newRecorder()
	b1 := sys.StartServer("g2", "b1", recv)
	send := newRecorder()
	a1 := sys.StartServer("g1", "a1", send)
	testutil.WaitFor(t, "a1's link to b1", send.connectedTo("b1"))
	if p := a1.Cluster().Peers(); len(p) != 1 || p[0].Transport != transport {
		t.Fatalf("a1's peers %+v, want b1 over %s", p, transport)
	}
	sendAll(t, send.peer("b1"), 100, "before")
	testutil.WaitFor(t, "100 messages over TLS", func() bool { return len(recv.messages("a1")) == 100 })
	checkInOrder(t, recv.messages("a1"), 100, "before")

	// Servers whose links.tls is wrong dial b1, and b1 refuses each with
	// a reason in its log.
	with := func(lt config.TLS) *config.System {
		c := *cfg
		c.Links.TLS = lt
		return &c
	}
	now := time.Now()
	expiredCert, expiredKey, _ := ca.issue(t, "expired", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	strangerCert, strangerKey, _ := other.valid(t, "stranger")
	cases := []struct {
		id     string
		sys    *config.System
		reason string
	}{
		{"a-expired", with(config.TLS{CertFile: expiredCert, KeyFile: expiredKey, CAFile: ca.file}), "tls: certificate expired or not yet valid"},
		{"a-stranger", with(config.TLS{CertFile: strangerCert, KeyFile: strangerKey, CAFile: ca.file}), "tls: certificate signed by an unknown authority"},
		{"a-plain", with(config.TLS{}), "not TLS"},
	}
	for _, c := range cases {
		sys.StartServerWith(cluster.Options{System: c.sys, Group: "g1", ID: c.id})
		testutil.WaitFor(t, "b1 to log refusing "+c.id, logged(sys, `"server":"b1"`, `"reason":"`+c.reason+`"`))
	}
	if n := b1.Cluster().Stats().LinksUp; n != 1 {
		t.Errorf("b1 has %d links up, want 1 (a1's)", n)
	}
	sendAll(t, send.peer("b1"), 100, "after")
	testutil.WaitFor(t, "100 more messages", func() bool { return len(recv.messages("a1")) == 200 })
	checkInOrder(t, recv.messages("a1")[100:], 100, "after")

	// Renewing the expired certificate in place heals a-expired's link:
	// it keeps redialling, and reads the new files at its next handshake.
	ca.valid(t, "expired")
	testutil.WaitFor(t, "a-expired's link after renewal", func() bool { return b1.Cluster().Stats().LinksUp == 2 })
}

// A dialer checks that the acceptor's certificate names the host the
// acceptor advertises.
func TestLinkDialerChecksTheAcceptorsName(t *testing.T) {
	ca := newTestCA(t, t.TempDir(), "system")
	cfg := twoGroups()
	cfg.Links.TLS = ca.linkTLS(t, "server")
	sys := newSystem(t, cfg)
	misnamed := *cfg
	cert, key, _ := ca.issue(t, "misnamed", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), "elsewhere.example")
	misnamed.Links.TLS = config.TLS{CertFile: cert, KeyFile: key, CAFile: ca.file}
	b1 := sys.StartServerWith(cluster.Options{System: &misnamed, Group: "g2", ID: "b1"})
	sys.StartServer("g1", "a1")
	testutil.WaitFor(t, "a1 to refuse b1's certificate", logged(sys, `"server":"a1"`, "dial failed", "failed to verify certificate", "cannot validate certificate for 127.0.0.1"))
	if n := b1.Cluster().Stats().LinksUp; n != 0 {
		t.Errorf("b1 has %d links up", n)
	}
}

// A TLS dialer reaching a server whose links are plain is refused with a
// reason naming links.tls.
func TestTLSDialerToPlainAcceptor(t *testing.T) {
	ca := newTestCA(t, t.TempDir(), "system")
	cfg := twoGroups()
	sys := newSystem(t, cfg)
	b1 := sys.StartServer("g2", "b1")
	tlsSys := *cfg
	tlsSys.Links.TLS = ca.linkTLS(t, "server")
	sys.StartServerWith(cluster.Options{System: &tlsSys, Group: "g1", ID: "a-tls"})
	testutil.WaitFor(t, "b1 to refuse a TLS dialer", logged(sys, `"server":"b1"`, "the peer speaks TLS and this server's links do not"))
	if n := b1.Cluster().Stats().LinksUp; n != 0 {
		t.Errorf("b1 has %d links up", n)
	}
}

func TestNewRefusesUnreadableTLSFiles(t *testing.T) {
	cfg := twoGroups()
	cfg.Links.TLS = config.TLS{CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem", CAFile: "/nonexistent/ca.pem"}
	_, err := cluster.New(cluster.Options{System: cfg, Group: "g2", Registry: embedded.NewHub().Connector()})
	if !errors.Is(err, cluster.ErrTLSFiles) || !errors.Is(err, cluster.ErrBadOptions) {
		t.Fatalf("err = %v, want ErrBadOptions and ErrTLSFiles", err)
	}
}

// echo sends every client message back to its sender.
type echo struct{}

func (echo) ClientMessage(c plugins.Client, m plugins.Message) error {
	return c.Send(m.Tag, bytes.Clone(m.Payload))
}

// peerSerial connects to addr over TLS trusting pool and returns the
// serial number of the certificate the server presents.
func peerSerial(t *testing.T, addr string, pool *x509.CertPool) *big.Int {
	t.Helper()
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool}, NetDialer: &net.Dialer{Timeout: testutil.Patience}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber
}

func TestClientsOverWSS(t *testing.T) {
	ca := newTestCA(t, t.TempDir(), "clients")
	cert, key, serial := ca.valid(t, "wss")
	// Pings every third of a second: an idle wss session lives on them.
	cl := config.Clients{ReadTimeout: config.Duration(time.Second), TLS: config.TLS{CertFile: cert, KeyFile: key}}
	sys := newSystem(t, clientSystem(cl))
	a1 := sys.StartServer("g1", "a1", echo{})
	wss := "wss://" + a1.Addr() + "/"
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Patience)
	defer cancel()

	c, err := client.Dial(ctx, client.Options{URL: wss, TLSConfig: &tls.Config{RootCAs: ca.pool}, ReadTimeout: 700 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip := func(c *client.Client, payload string) {
		t.Helper()
		if err := c.Send(7, []byte(payload)); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-c.Messages():
			if m.Tag != 7 || string(m.Payload) != payload {
				t.Fatalf("echo: tag %d %q, want 7 %q", m.Tag, m.Payload, payload)
			}
		case <-ctx.Done():
			t.Fatal("no echo over wss")
		}
	}
	roundTrip(c, "over wss")
	time.Sleep(1500 * time.Millisecond) // past both read timeouts, unless pings and pongs flow
	roundTrip(c, "after idling")

	t.Run("plain ws is refused", func(t *testing.T) {
		_, err := client.Dial(ctx, client.Options{URL: "ws://" + a1.Addr() + "/"})
		if err == nil || !strings.Contains(err.Error(), "400") {
			t.Fatalf("ws:// to a wss port: err = %v, want an HTTP 400", err)
		}
		testutil.WaitFor(t, "a1 to log the refusal", logged(sys, `"server":"a1"`, `"reason":"not TLS"`, "serves wss:// only"))
	})
	t.Run("an untrusted certificate fails the client", func(t *testing.T) {
		_, err := client.Dial(ctx, client.Options{URL: wss})
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("err = %v, want x509.UnknownAuthorityError", err)
		}
	})
	t.Run("a server link is refused", func(t *testing.T) {
		conn, err := net.Dial("tcp", a1.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write(protocol.AppendFrame(nil, protocol.KindHello, 0, []byte("hello")))
		testutil.WaitFor(t, "a1 to log the refusal", logged(sys, `"server":"a1"`, `"reason":"not TLS"`, "not TLS on a wss:// client port"))
	})

	t.Run("renewed certificate files are served without a restart", func(t *testing.T) {
		if got := peerSerial(t, a1.Addr(), ca.pool); got.Cmp(serial) != 0 {
			t.Fatalf("serial %x, want %x", got, serial)
		}
		_, _, renewed := ca.valid(t, "wss") // replaces the files in place
		if got := peerSerial(t, a1.Addr(), ca.pool); got.Cmp(renewed) != 0 {
			t.Fatalf("after renewal: serial %x, want the new %x", got, renewed)
		}
		testutil.WaitFor(t, "a1 to log the reload", logged(sys, `"server":"a1"`, "TLS certificate reloaded", renewed.Text(16)))
		c2, err := client.Dial(ctx, client.Options{URL: wss, TLSConfig: &tls.Config{RootCAs: ca.pool}})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		roundTrip(c2, "after renewal")
		roundTrip(c, "the first session lives on")

		// A renewal caught half done (the certificate replaced, not yet
		// its key) keeps the previous pair, with one warning.
		nextCert, nextKey, next := ca.valid(t, "wss-next")
		if err := os.Rename(nextCert, cert); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if got := peerSerial(t, a1.Addr(), ca.pool); got.Cmp(renewed) != 0 {
				t.Fatalf("half renewed: serial %x, want the previous %x", got, renewed)
			}
		}
		if n := strings.Count(sys.Logs(), "do not load; still serving the previous certificate"); n != 1 {
			t.Errorf("%d warnings about the half-renewed pair, want 1", n)
		}
		if err := os.Rename(nextKey, key); err != nil {
			t.Fatal(err)
		}
		if got := peerSerial(t, a1.Addr(), ca.pool); got.Cmp(next) != 0 {
			t.Fatalf("renewal completed: serial %x, want %x", got, next)
		}
	})
}
