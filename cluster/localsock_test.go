//go:build unix

package cluster_test

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
)

// The tests in this file link a1 of g1 to b1 of g2, both of this host,
// with links.socketDir set.

// socketSystem is twoGroups with dir as links.socketDir.
func socketSystem(dir string) *config.System {
	sys := twoGroups()
	sys.Links.SocketDir = dir
	return sys
}

// transportTo returns the transport of s's link to peer, "" while there
// is none.
func transportTo(s *clustertest.Server, peer string) string {
	for _, p := range s.Cluster().Peers() {
		if p.ID == peer {
			return p.Transport
		}
	}
	return ""
}

// linkOver starts a1 (b1 already runs) and waits until their link is up,
// then checks that both ends report transport and that messages cross it
// both ways.
func linkOver(t *testing.T, sys *clustertest.System, b1 *recorder, transport string) {
	t.Helper()
	a1 := newRecorder()
	sys.StartServer("g1", "a1", a1)
	testutil.WaitFor(t, "a1 linked to b1", a1.connectedTo("b1"))
	testutil.WaitFor(t, "b1 linked to a1", b1.connectedTo("a1"))
	for _, end := range []struct{ s, peer string }{{"a1", "b1"}, {"b1", "a1"}} {
		if got := transportTo(sys.Server(end.s), end.peer); got != transport {
			t.Fatalf("%s's link to %s runs over %q, want %q", end.s, end.peer, got, transport)
		}
	}
	sendAll(t, a1.peer("b1"), 10, "up")
	sendAll(t, b1.peer("a1"), 10, "down")
	testutil.WaitFor(t, "b1 got a1's messages", func() bool { return len(b1.messages("a1")) == 10 })
	testutil.WaitFor(t, "a1 got b1's messages", func() bool { return len(a1.messages("b1")) == 10 })
}

// listenTCP reserves b1's address before b1 starts, so that a test can
// prepare b1's socket path.
func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func isSocket(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}

func TestLinkSocketCarriesSameHostLinks(t *testing.T) {
	dir := t.TempDir()
	sys := newSystem(t, socketSystem(dir))
	b1 := newRecorder()
	sys.StartServer("g2", "b1", b1)
	path := cluster.LinkSocketPath(dir, sys.Server("b1").Addr())
	if !isSocket(path) {
		t.Fatalf("no socket at %s", path)
	}
	linkOver(t, sys, b1, "unix")
	if !strings.Contains(sys.Logs(), `"transport":"unix"`) {
		t.Fatal(`no "link up" log line says the transport`)
	}
	sys.Server("b1").Shutdown()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("socket %s still there after b1 shut down (%v)", path, err)
	}
}

func TestLinkSocketOff(t *testing.T) {
	sys := newSystem(t, socketSystem(config.SocketDirOff))
	b1 := newRecorder()
	sys.StartServer("g2", "b1", b1)
	linkOver(t, sys, b1, "tcp")
}

// A server that ended without removing its socket (killed) leaves the
// file behind; the next server advertising that address replaces it.
func TestLinkSocketReplacesStaleFile(t *testing.T) {
	dir := t.TempDir()
	sys := newSystem(t, socketSystem(dir))
	ln := listenTCP(t)
	path := cluster.LinkSocketPath(dir, ln.Addr().String())
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if !isSocket(path) {
		t.Fatal("no stale socket to replace")
	}
	b1 := newRecorder()
	sys.StartServerWith(cluster.Options{Group: "g2", ID: "b1", Listener: ln, Plugins: []plugins.Plugin{b1}})
	linkOver(t, sys, b1, "unix")
}

// A socket at b1's path that some other program answers on is left to
// it; a1 dials it, fails the handshake there, and links over TCP.
func TestLinkSocketSquatterFallsBackToTCP(t *testing.T) {
	dir := t.TempDir()
	sys := newSystem(t, socketSystem(dir))
	ln := listenTCP(t)
	squat, err := net.Listen("unix", cluster.LinkSocketPath(dir, ln.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { squat.Close() })
	dialled := make(chan struct{}, 1)
	go func() {
		for {
			c, err := squat.Accept()
			if err != nil {
				return
			}
			select {
			case dialled <- struct{}{}:
			default:
			}
			c.Write([]byte("not a cloudrift server\n"))
			c.Close()
		}
	}()
	b1 := newRecorder()
	sys.StartServerWith(cluster.Options{Group: "g2", ID: "b1", Listener: ln, Plugins: []plugins.Plugin{b1}})
	if !strings.Contains(sys.Logs(), "another server listens on this address's link socket") {
		t.Fatal("b1 did not say why it has no link socket")
	}
	linkOver(t, sys, b1, "tcp")
	select {
	case <-dialled:
	default:
		t.Fatal("a1 never tried the socket")
	}
}

// A socket directory other users may write to, or a path that is no
// directory, is passed over with a warning: links stay on TCP.
func TestLinkSocketUntrustedDir(t *testing.T) {
	for _, c := range []struct {
		name string
		dir  func(t *testing.T) string
		why  string
	}{
		{"open to others", func(t *testing.T) string {
			dir := t.TempDir()
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "other users may write to"},
		{"a file", func(t *testing.T) string {
			f := t.TempDir() + "/file"
			if err := os.WriteFile(f, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return f
		}, "not a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := c.dir(t)
			sys := newSystem(t, socketSystem(dir))
			b1 := newRecorder()
			sys.StartServer("g2", "b1", b1)
			linkOver(t, sys, b1, "tcp")
			if logs := sys.Logs(); !strings.Contains(logs, c.why) || !strings.Contains(logs, "links between servers of this host use TCP") {
				t.Fatalf("no warning saying %q", c.why)
			}
		})
	}
}

// More servers of one host handshaking at once than the per-address cap
// of a TCP port are all let in through the link socket: a1 links over it
// while 20 connections of the host sit in their handshake there.
func TestLinkSocketNoPerAddressCap(t *testing.T) {
	dir := t.TempDir()
	cfg := socketSystem(dir)
	cfg.Links.HandshakeTimeout = config.Duration(10 * time.Second)
	sys := newSystem(t, cfg)
	b1 := newRecorder()
	sys.StartServer("g2", "b1", b1)
	path := cluster.LinkSocketPath(dir, sys.Server("b1").Addr())
	for range 20 {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	linkOver(t, sys, b1, "unix")
}

// A server that starts clears the directory of old sockets nobody answers
// on, those of servers killed before they could remove theirs.
func TestLinkSocketSweptAtStart(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/127.0.0.1_1.sock"
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	sys := newSystem(t, socketSystem(dir))
	sys.StartServer("g2", "b1")
	testutil.WaitFor(t, "the old socket swept", func() bool { return !isSocket(path) })
	testutil.WaitFor(t, "the sweep logged", logged(sys, `"server":"b1"`, `"removed":1`, "ended without removing them"))
}
