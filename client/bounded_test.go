package client

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
)

// Tests that the SDK never hangs and never holds more than it says, over
// a fake server's real sockets.

// floodThenDie sends n user messages, then drops the connection without a
// word, as a server whose process died.
func floodThenDie(n int) script {
	return func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
		welcome(t, conn, 1, 64)
		for i := range n {
			if writeWS(conn, protocol.KindUser, uint16(i), []byte("m")) != nil {
				return
			}
		}
		conn.NetConn().Close()
	}
}

func waitDone(t *testing.T, c *Client) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(waitLimit):
		t.Fatal("Done never closed")
	}
}

// countMessages receives what is left on an ended client's Messages.
func countMessages(c *Client) int {
	n := 0
	for range c.Messages() {
		n++
	}
	return n
}

// A client nobody drains ends once its queue stayed full for QueueWait,
// even though its server died meanwhile.
func TestUndrainedClientEnds(t *testing.T) {
	f := newFakeServer(t, floodThenDie(300))
	c := dial(t, Options{URL: f.url, QueueSize: 16, QueueWait: 200 * time.Millisecond})
	waitDone(t, c)
	if !errors.Is(c.Err(), ErrQueueFull) {
		t.Fatalf("Err() = %v, want ErrQueueFull", c.Err())
	}
	if n := countMessages(c); n != 16 {
		t.Fatalf("%d messages kept, want the queue's 16", n)
	}
}

// A client whose queue has room notices at once that its server died, and
// keeps what arrived.
func TestServerDeathEndsClient(t *testing.T) {
	f := newFakeServer(t, floodThenDie(10))
	c := dial(t, Options{URL: f.url, QueueSize: 16, QueueWait: time.Hour})
	waitDone(t, c)
	if c.Err() == nil || errors.Is(c.Err(), ErrQueueFull) {
		t.Fatalf("Err() = %v, want the connection's end", c.Err())
	}
	if n := countMessages(c); n != 10 {
		t.Fatalf("%d messages after the end, want 10", n)
	}
}

// A server message larger than MaxReceive ends the client.
func TestMaxReceive(t *testing.T) {
	f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
		welcome(t, conn, 1, 64)
		writeWS(conn, protocol.KindUser, 1, make([]byte, 1000))
		writeWS(conn, protocol.KindUser, 2, make([]byte, 1001))
		drain(conn)
	})
	c := dial(t, Options{URL: f.url, MaxReceive: 1000})
	if m := recv(t, c.Messages()); m.Tag != 1 {
		t.Fatalf("message %d, want 1", m.Tag)
	}
	waitDone(t, c)
	if !errors.Is(c.Err(), ErrProtocol) {
		t.Fatalf("Err() = %v, want ErrProtocol", c.Err())
	}
}

// notifyScript sends n notifications right after the welcome, then waits.
func notifyScript(n int) script {
	return func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
		welcome(t, conn, 1, 64)
		for i := range n {
			k := cloud.Key{Primary: "k", Secondary: uint32(i)}
			note := cloudwire.Notice{Type: cloudwire.Updated, Row: cloud.Row{Key: k, Uploader: protocol.ClientRef{Server: "x", ID: 1}, Via: "x"}}
			writeWS(conn, protocol.KindCloudNotify, 0, note.AppendTo(nil))
		}
		drain(conn)
	}
}

// Notifications that arrive before the first call to Notifications are
// kept; those that find the channel full are dropped and counted, and the
// client keeps running.
func TestNotificationsQueued(t *testing.T) {
	f := newFakeServer(t, notifyScript(5))
	c := dial(t, Options{URL: f.url, QueueSize: 2, Handler: func(Message) {}})
	deadline := time.Now().Add(waitLimit)
	for c.DroppedNotifications() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if d := c.DroppedNotifications(); d != 3 {
		t.Fatalf("%d notifications dropped, want 3", d)
	}
	ch := c.Notifications()
	for i := range 2 {
		if n := recv(t, ch); n.Key.Secondary != uint32(i) {
			t.Fatalf("notification %d is for %v", i, n.Key)
		}
	}
	if c.Err() != nil {
		t.Fatalf("the client ended: %v", c.Err())
	}
}

// A server that closes with 1002 (this client broke the WebSocket
// protocol) ends the client with ReasonProtocol.
func TestServerProtocolClose(t *testing.T) {
	f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
		welcome(t, conn, 1, 64)
		msg := websocket.FormatCloseMessage(websocket.CloseProtocolError, "bad opcode 3")
		conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(waitLimit))
		drain(conn)
	})
	c := dial(t, Options{URL: f.url})
	waitDone(t, c)
	var ce *CloseError
	if !errors.As(c.Err(), &ce) || ce.Reason != protocol.ReasonProtocol || !errors.Is(c.Err(), ErrProtocol) {
		t.Fatalf("Err() = %v, want a CloseError with %s", c.Err(), protocol.ReasonProtocol)
	}
}
