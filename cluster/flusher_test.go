// This file is in package cluster because it drives the flusher's path
// of one session (enqueue, then flush) below any server.

package cluster

import (
	"bytes"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/protocol"
)

// TestFlushReusesQueue: a client sent one message at a time (each client
// of a fan-out) keeps its queue's slice from one message to the next, so
// queueing and flushing a message allocates nothing; every message still
// arrives, in order.
func TestFlushReusesQueue(t *testing.T) {
	server, client := tcpPair(t)
	var pool sync.Pool
	pool.New = func() any { b := make([]byte, 0, 1024); return &b }
	h := &clientHub{fwake: make(chan struct{}, 1)}
	h.cfg.SendQueueBytes = 1 << 20
	c := &session{h: h, cc: newClientConn(server, nil, &pool, nil)}
	sent := 0
	send := func() {
		sent++
		msg := protocol.AppendWS(nil, protocol.KindUser, uint16(sent), []byte("hi"))
		if err := c.enqueue(msg); err != nil {
			t.Fatal(err)
		}
		// This goroutine is the flusher: take the dirty client, flush it.
		h.fmu.Lock()
		if len(h.dirty) != 1 || h.dirty[0] != c {
			t.Fatalf("dirty clients %d, want this one", len(h.dirty))
		}
		h.dirty = h.dirty[:0]
		h.fmu.Unlock()
		c.flush()
		if c.writing {
			t.Fatal("the session still writing after a complete flush")
		}
	}
	send()
	var msgs [][]byte
	for range 50 {
		msgs = append(msgs, protocol.AppendWS(nil, protocol.KindUser, 7, []byte("hi")))
	}
	i := 0
	allocs := testing.AllocsPerRun(len(msgs)-1, func() {
		if err := c.enqueue(msgs[i]); err != nil {
			t.Fatal(err)
		}
		i++
		h.fmu.Lock()
		h.dirty = h.dirty[:0]
		h.fmu.Unlock()
		c.flush()
	})
	if allocs != 0 && !raceEnabled {
		t.Errorf("%v allocations per queued and flushed message, want 0", allocs)
	}
	send()
	// Every message arrived whole, in order: the first, the 50 of the
	// loop, the last.
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	frame := func(tag uint16) []byte {
		m := protocol.AppendWS(nil, protocol.KindUser, tag, []byte("hi"))
		return append([]byte{0x82, byte(len(m))}, m...)
	}
	want := frame(1)
	for range len(msgs) {
		want = append(want, frame(7)...)
	}
	want = append(want, frame(2)...)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the client got % x, want % x", got, want)
	}
}

// A flush takes the front of the queue up to flushBudget, and always the
// first message, however large.
func TestFlushCut(t *testing.T) {
	kib := func(n int) []byte { return make([]byte, n<<10) }
	for _, c := range []struct {
		queue       [][]byte
		n, wantSize int
	}{
		{[][]byte{kib(1)}, 1, 1 << 10},
		{[][]byte{kib(100), kib(100), kib(56), kib(1)}, 3, 256 << 10},
		{[][]byte{kib(300), kib(1)}, 1, 300 << 10},
		{[][]byte{kib(1), kib(300)}, 1, 1 << 10},
	} {
		n, size := flushCut(c.queue)
		if n != c.n || size != c.wantSize {
			t.Errorf("flushCut of %d messages: %d messages, %d bytes; want %d, %d", len(c.queue), n, size, c.n, c.wantSize)
		}
	}
}
