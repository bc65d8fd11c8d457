//go:build unix

package cluster

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// A busy client's socket is read in large chunks, and a client that goes
// quiet holds no chunk: not after its last byte was read, and not while
// its reader waits for more.
func TestReadAheadChunksAndReleasesWhenQuiet(t *testing.T) {
	server, client := tcpPair(t)
	var wbufs, rbufs sync.Pool
	wbufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	rbufs.New = func() any { b := make([]byte, readAheadSize); return &b }
	cc := newClientConn(server, nil, &wbufs, &rbufs)
	if !cc.ra.on() {
		t.Fatal("read-ahead is off on a TCP socket")
	}

	sent := make([]byte, 40<<10)
	for i := range sent {
		sent[i] = byte(i * 7)
	}
	if _, err := client.Write(sent); err != nil {
		t.Fatal(err)
	}
	// Read as gorilla/websocket's 512-byte bufio.Reader does, counting the
	// reads that had to fetch a new chunk from the socket.
	got := make([]byte, 0, len(sent))
	fills := 0
	p := make([]byte, 512)
	for len(got) < len(sent) {
		if !cc.ra.held() {
			fills++
		}
		n, err := cc.Read(p)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, p[:n]...)
	}
	if !bytes.Equal(got, sent) {
		t.Fatal("bytes read differ from bytes sent")
	}
	// Direct reads would take len(sent)/512 = 80 read(2) calls.
	if fills > 10 {
		t.Errorf("%d chunks read for %d bytes; want a few large ones", fills, len(sent))
	}
	if cc.ra.held() {
		t.Error("a chunk is still held after its last byte was read")
	}

	// Quiet: the reader waits for data holding no chunk.
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b := make([]byte, 512)
		n, err := cc.Read(b)
		done <- result{b[:n], err}
	}()
	select {
	case r := <-done:
		t.Fatalf("read returned %q, %v with nothing sent", r.b, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	if cc.ra.held() {
		t.Error("a waiting reader holds a chunk")
	}
	if _, err := client.Write([]byte("next")); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || string(r.b) != "next" {
		t.Fatalf("read %q, %v; want \"next\"", r.b, r.err)
	}
	if cc.ra.held() {
		t.Error("a chunk is held after a small read was copied out")
	}

	// Deadlines and the end of the stream read as from the socket itself.
	cc.SetReadDeadline(time.Now().Add(-time.Second))
	var ne net.Error
	if _, err := cc.Read(p); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	cc.SetReadDeadline(time.Time{})
	client.Close()
	if _, err := cc.Read(p); !errors.Is(err, io.EOF) {
		t.Fatalf("read after the peer closed: %v, want EOF", err)
	}
}
