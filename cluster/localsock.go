package cluster

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cloudrift/cloudrift/config"
)

// Servers of one host link over Unix sockets (links.socketDir): a server
// that accepts links also listens on a socket in the host's socket
// directory, named after its advertised address, and a dialler that finds
// that socket uses it instead of TCP. Everything above the connection (the
// handshake, the secret, TLS, frames, heartbeats, backpressure) is the
// same; the kernel's work per byte is not: a Unix stream carries a relayed
// message for less CPU than loopback TCP, which runs the whole TCP stack
// on both ends.
//
// The socket's name comes from the registry's address, which both ends
// know, so nothing new is registered. Trust comes from the directory: it
// must belong to the server's user and be closed to others' writes, so no
// other user can put a socket where a server looks; and a socket that
// leads to the wrong server fails the handshake's identity check, after
// which the dialler uses TCP.

// maxSocketPath is the longest socket path used: sun_path holds 108
// bytes on Linux and 104 on the BSDs and macOS, the terminating NUL
// included.
const maxSocketPath = 103

// hashedSocketName is the length of a socket name made from a hash.
const hashedSocketName = 24 + len(".sock")

// errSocketDir is wrapped by the reasons a socket directory is passed over.
var errSocketDir = errors.New("cluster: link socket directory unusable")

// socketDir returns the directory links.socketDir names, made when
// missing, or "" when same-host links are off or the directory cannot
// be trusted (logged: links then stay on TCP).
func (s *Server) socketDir() string {
	dir := s.links.SocketDir
	switch dir {
	case config.SocketDirOff:
		return ""
	case "":
		if !localSockets {
			return ""
		}
		dir = defaultSocketDir()
	}
	err := secureSocketDir(dir)
	if err == nil && len(dir)+1+hashedSocketName > maxSocketPath {
		err = fmt.Errorf("%w: %s is too long for a socket path (%d bytes at most)", errSocketDir, dir, maxSocketPath)
	}
	if err != nil {
		s.log.Warn().Err(err).Str("socket_dir", dir).Msg("links between servers of this host use TCP")
		return ""
	}
	return dir
}

// defaultSocketDir is links.socketDir's zero value: per user, so that
// servers of different users on one host never share it.
func defaultSocketDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("cloudrift-links-%d", os.Getuid()))
}

// socketPath names the socket of the server advertising addr in dir: the
// address itself where it fits, a hash of it where it does not.
func socketPath(dir, addr string) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '_'
	}, addr) + ".sock"
	if len(dir)+1+len(name) > maxSocketPath {
		sum := sha256.Sum256([]byte(addr))
		name = hex.EncodeToString(sum[:12]) + ".sock"
	}
	return filepath.Join(dir, name)
}

// listenLocal listens on the socket of the advertised address in dir, or
// returns nil (logged) when it cannot. A socket file that nobody answers
// on is left from a server that ended without removing it, and is
// replaced; one that answers belongs to a live server advertising the
// same address (a misconfiguration), and is left to it.
func (s *Server) listenLocal(dir, advertised string) net.Listener {
	path := socketPath(dir, advertised)
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			s.log.Warn().Str("socket", path).Msg("another server listens on this address's link socket; links to this server use TCP")
			return nil
		}
		if err := os.Remove(path); err != nil {
			s.log.Warn().Err(err).Str("socket", path).Msg("cannot replace a stale link socket; links to this server use TCP")
			return nil
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		s.log.Warn().Err(err).Str("socket", path).Msg("cannot listen on a link socket; links to this server use TCP")
		return nil
	}
	return ln
}

// staleAfter is how old a socket file nobody answers on must be before
// sweepSockets removes it: a server between its bind and its listen
// refuses connections too, for an instant, with a file made that instant.
const staleAfter = time.Minute

// sweepSockets removes the socket files in dir that nobody answers on and
// that are older than staleAfter at now: those of servers that ended
// without removing them (killed), which would otherwise stay until a
// server advertising the same address came along. Only a refused
// connection counts as nobody answering. It returns how many it removed.
func sweepSockets(ctx context.Context, dir string, now time.Time) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	removed := 0
	for _, e := range entries {
		if ctx.Err() != nil {
			break
		}
		if e.Type()&fs.ModeSocket == 0 || !strings.HasSuffix(e.Name(), ".sock") {
			continue
		}
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) < staleAfter {
			continue
		}
		path := filepath.Join(dir, e.Name())
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			continue
		}
		if errors.Is(err, syscall.ECONNREFUSED) && os.Remove(path) == nil {
			removed++
		}
	}
	return removed
}

// dialLocal connects to the socket of the server advertising addr, if
// this host has one. A server elsewhere has none: the dial fails at once.
func (s *Server) dialLocal(ctx context.Context, d *net.Dialer, addr string) (net.Conn, bool) {
	if s.sockDir == "" {
		return nil, false
	}
	conn, err := d.DialContext(ctx, "unix", socketPath(s.sockDir, addr))
	if err != nil {
		return nil, false
	}
	return conn, true
}

// socketBuffer is the send and receive buffer a link asks of a Unix
// socket: what Linux lets loopback TCP grow to (tcp_wmem's maximum).
// Left at the default (208 KiB), a relay's link writer filled it and
// slept, and its batches shrank: 20% more system calls per message than
// over TCP, and less throughput. The kernel caps the request at
// net.core.wmem_max and rmem_max.
const socketBuffer = 4 << 20

// growSocketBuffers gives a link over a Unix socket socketBuffer each
// way; it leaves TCP connections to the kernel's autotuning.
func growSocketBuffers(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if uc, ok := c.(*net.UnixConn); ok {
		uc.SetWriteBuffer(socketBuffer)
		uc.SetReadBuffer(socketBuffer)
	}
}

// transportOf names the network a link's connection runs on: "unix" or
// "tcp" (TLS or not).
func transportOf(c net.Conn) string {
	return c.LocalAddr().Network()
}

// peerAddr is what a downstream server's link came from: its TCP address,
// or, over a socket (which has no address of its own), "unix:" and the
// socket it came in on.
func peerAddr(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil && a.String() != "" {
		return a.String()
	}
	return "unix:" + c.LocalAddr().String()
}
