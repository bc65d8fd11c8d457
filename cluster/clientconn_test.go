// This file is in package cluster because it tests clientConn, the
// unexported writer of one game client's WebSocket, below any server.

package cluster

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func TestTryWriteNeverWaits(t *testing.T) {
	// The flusher writes every client's messages on one goroutine, so a
	// write that holds one connection (a ping blocked on a full socket)
	// must not hold it: tryWrite then writes nothing and says so.
	server, client := tcpPair(t)
	var pool sync.Pool
	pool.New = func() any { b := make([]byte, 0, 1024); return &b }
	cc := newClientConn(server, nil, &pool, nil)
	cc.mu.Lock() // another write holds the connection
	done := make(chan bool, 1)
	go func() {
		wrote, rest, err := cc.tryWrite([][]byte{[]byte("x")})
		done <- wrote || rest || err != nil
	}()
	select {
	case bad := <-done:
		if bad {
			t.Fatal("tryWrite wrote, or failed, while the connection was held")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tryWrite waited for the connection")
	}
	cc.mu.Unlock()

	wrote, rest, err := cc.tryWrite([][]byte{[]byte("ab"), make([]byte, 300)})
	if !wrote || rest || err != nil {
		t.Fatalf("tryWrite on a free connection: wrote %v, rest %v, %v", wrote, rest, err)
	}
	want := append([]byte{0x82, 2, 'a', 'b', 0x82, 126, 1, 44}, make([]byte, 300)...)
	got := make([]byte, len(want))
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("frames % x, want % x", got[:12], want[:12])
	}
}
