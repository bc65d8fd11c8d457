package cluster

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// Caps on connections that have not finished their handshake (a server
// link before Welcome, a game client before its WebSocket upgrade). They
// bound what unauthenticated peers can hold: each such connection costs a
// goroutine and a small buffer until the handshake timeout.
const (
	// Server-link ports. Servers dial one link per peer and a handshake
	// takes a few round trips, so a few per address leave room for a
	// host (or a NAT) with several servers starting at once.
	maxLinkHandshakes        = 128
	maxLinkHandshakesPerAddr = 16
	// Client ports. Players behind one NAT share an address.
	maxClientHandshakes        = 1024
	maxClientHandshakesPerAddr = 64
)

var (
	errGateFull = errors.New("too many connections in their handshake on this port")
	errAddrFull = errors.New("too many connections in their handshake from this address")
)

// handshakeGate counts a listener's connections that are still in their
// handshake, in all and per source address.
type handshakeGate struct {
	max, perAddr int

	mu     sync.Mutex
	total  int
	byAddr map[string]int
	held   map[net.Conn]string // connections inside, with their address
}

func newHandshakeGate(max, perAddr int) *handshakeGate {
	return &handshakeGate{max: max, perAddr: perAddr, byAddr: make(map[string]int), held: make(map[net.Conn]string)}
}

// enter admits c, or returns an error wrapping errGateFull or errAddrFull
// (with the count) when a cap is reached.
func (g *handshakeGate) enter(c net.Conn) error {
	addr := hostOf(c.RemoteAddr())
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.total >= g.max:
		return fmt.Errorf("%w (%d)", errGateFull, g.total)
	case g.byAddr[addr] >= g.perAddr:
		return fmt.Errorf("%w (%d)", errAddrFull, g.byAddr[addr])
	}
	g.total++
	g.byAddr[addr]++
	g.held[c] = addr
	return nil
}

// leave releases c's place; it does nothing for a connection not inside.
func (g *handshakeGate) leave(c net.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	addr, ok := g.held[c]
	if !ok {
		return
	}
	delete(g.held, c)
	g.total--
	if g.byAddr[addr]--; g.byAddr[addr] <= 0 {
		delete(g.byAddr, addr)
	}
}

// hostOf returns the host part of a network address (the IP of a TCP
// peer), or the whole address when it has no port.
func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	s := a.String()
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}
