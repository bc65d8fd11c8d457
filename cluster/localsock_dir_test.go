//go:build unix

// This file is in package cluster because socketPath, secureSocketDir,
// growSocketBuffers and sweepSockets are not exported.

package cluster

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSocketPath(t *testing.T) {
	dir := "/tmp/cloudrift-links-1000"
	if got, want := socketPath(dir, "10.0.0.5:7000"), dir+"/10.0.0.5_7000.sock"; got != want {
		t.Fatalf("socketPath = %q, want %q", got, want)
	}
	if got, want := socketPath(dir, "[::1]:7000"), dir+"/___1__7000.sock"; got != want {
		t.Fatalf("socketPath = %q, want %q", got, want)
	}
	long := strings.Repeat("world-server.", 8) + "internal:7000"
	a, b := socketPath(dir, long), socketPath(dir, long+"1")
	if len(a) > maxSocketPath || len(b) > maxSocketPath {
		t.Fatalf("paths of %d and %d bytes, limit %d", len(a), len(b), maxSocketPath)
	}
	if a == b {
		t.Fatalf("two addresses share the socket %s", a)
	}
	if len(filepath.Base(a)) != hashedSocketName {
		t.Fatalf("hashed name %q is not %d bytes", filepath.Base(a), hashedSocketName)
	}
}

func TestSecureSocketDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "made", "here")
	if err := secureSocketDir(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Fatalf("made with mode %04o, want none for others", perm)
	}
	if err := secureSocketDir(dir); err != nil {
		t.Fatalf("again: %v", err)
	}
	// Readable by others is fine (connecting still takes the secret);
	// writable is not.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := secureSocketDir(dir); err != nil {
		t.Fatalf("mode 0755: %v", err)
	}
	if err := os.Chmod(dir, 0o775); err != nil {
		t.Fatal(err)
	}
	if err := secureSocketDir(dir); err == nil || !strings.Contains(err.Error(), "other users may write") {
		t.Fatalf("mode 0775: %v", err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if err := secureSocketDir(link); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("a symbolic link: %v", err)
	}
}

// A directory of another user is refused; only root can make one here.
func TestSecureSocketDirOtherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("making a directory of another user takes root")
	}
	dir := t.TempDir()
	if err := os.Chown(dir, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	if err := secureSocketDir(dir); err == nil || !strings.Contains(err.Error(), "belongs to user 4242") {
		t.Fatalf("got %v", err)
	}
}

// A link over a Unix socket asks for socketBuffer each way (as much as
// the kernel allows); a TCP connection is left to autotuning.
func TestGrowSocketBuffers(t *testing.T) {
	c := dialed(t, "unix", filepath.Join(t.TempDir(), "s.sock"))
	before := sockopt(t, c, syscall.SO_SNDBUF)
	growSocketBuffers(tls.Client(c, &tls.Config{})) // as a link over TLS holds it
	// Linux grants at most its maximum, doubled for its bookkeeping.
	for _, b := range []struct {
		opt  int
		name string
	}{{syscall.SO_SNDBUF, "wmem_max"}, {syscall.SO_RCVBUF, "rmem_max"}} {
		want := min(socketBuffer, kernelMax(t, b.name))
		if got := sockopt(t, c, b.opt); got < want {
			t.Fatalf("buffer %d bytes, want at least %d (%s)", got, want, b.name)
		}
	}
	if after := sockopt(t, c, syscall.SO_SNDBUF); kernelMax(t, "wmem_max") > before && after <= before {
		t.Fatalf("send buffer %d bytes, as before", after)
	}

	tc := dialed(t, "tcp", "127.0.0.1:0")
	before = sockopt(t, tc, syscall.SO_SNDBUF)
	growSocketBuffers(tc)
	if got := sockopt(t, tc, syscall.SO_SNDBUF); got != before {
		t.Fatalf("TCP send buffer set to %d bytes (was %d): autotuning is off", got, before)
	}
}

// dialed returns a connection dialled to a listener on network at addr;
// both are closed when the test ends.
func dialed(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// kernelMax reads net.core's name (wmem_max, rmem_max): the most buffer
// a socket may ask for.
func kernelMax(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/core/" + name)
	if err != nil {
		return socketBuffer // not Linux: nothing to cap by here
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

func sockopt(t *testing.T, c net.Conn, opt int) int {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := raw.Control(func(fd uintptr) { v, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, opt) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return v
}

// The sweep removes old socket files nobody answers on, and nothing else:
// not a fresh one (a server may be between its bind and its listen), not
// one a live listener answers on, not a file that is no socket.
func TestSweepSockets(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * staleAfter)
	stale := func(name string, mtime time.Time) string {
		path := filepath.Join(dir, name)
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close()
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return path
	}
	gone := stale("old.sock", old)
	fresh := stale("fresh.sock", time.Now())
	other := stale("old.other", old) // not named as a link socket
	live := filepath.Join(dir, "live.sock")
	ln, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chtimes(live, old, old); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain.sock")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(plain, old, old)

	if n := sweepSockets(context.Background(), dir, time.Now()); n != 1 {
		t.Fatalf("removed %d files, want 1", n)
	}
	if _, err := os.Lstat(gone); !os.IsNotExist(err) {
		t.Fatalf("%s still there (%v)", gone, err)
	}
	for _, p := range []string{fresh, other, live, plain} {
		if _, err := os.Lstat(p); err != nil {
			t.Fatalf("%s removed: %v", p, err)
		}
	}
}
