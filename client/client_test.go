package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitLimit bounds every wait in these tests so that a bug fails a test
// instead of hanging it. It is not a performance assertion.
const waitLimit = 10 * time.Second

// fakeServer is an external server stand-in: for each WebSocket
// connection it runs script with a connection number counting from 1.
// Cleanup closes every connection and waits for every script to return.
type fakeServer struct {
	srv *httptest.Server
	url string
	n   atomic.Uint64
	wg  sync.WaitGroup

	mu    sync.Mutex
	conns []*websocket.Conn
}

type script func(t *testing.T, conn *websocket.Conn, r *http.Request, n uint64)

func newFakeServer(t *testing.T, s script) *fakeServer {
	t.Helper()
	f := &fakeServer{}
	up := websocket.Upgrader{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("fake server: upgrade: %v", err)
			return
		}
		f.wg.Add(1)
		defer f.wg.Done()
		f.mu.Lock()
		f.conns = append(f.conns, conn)
		f.mu.Unlock()
		defer conn.Close()
		s(t, conn, r, f.n.Add(1))
	}))
	f.url = "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/ws"
	t.Cleanup(func() {
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.srv.Close()
		f.wg.Wait()
	})
	return f
}

func writeWS(conn *websocket.Conn, kind protocol.Kind, tag uint16, payload []byte) error {
	conn.SetWriteDeadline(time.Now().Add(waitLimit))
	return conn.WriteMessage(websocket.BinaryMessage, protocol.AppendWS(nil, kind, tag, payload))
}

func welcome(t *testing.T, conn *websocket.Conn, id uint64, max uint32) {
	w := protocol.ClientWelcome{ServerID: "ext-1", ClientID: id, MaxMessage: max}
	if err := writeWS(conn, protocol.KindClientWelcome, 0, w.AppendTo(nil)); err != nil {
		t.Errorf("fake server: welcome: %v", err)
	}
}

// sendClose ends a session the way the external server does: a KindClose
// with the reason, then a WebSocket close frame.
func sendClose(conn *websocket.Conn, reason protocol.Reason, msg string) {
	cl := protocol.Close{Reason: reason, Message: msg}
	writeWS(conn, protocol.KindClose, 0, cl.AppendTo(nil))
	conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(waitLimit))
}

// drain reads until the connection fails and returns the error.
func drain(conn *websocket.Conn) error {
	conn.SetReadDeadline(time.Now().Add(waitLimit))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			return err
		}
	}
}

func readUser(conn *websocket.Conn) (protocol.Frame, error) {
	conn.SetReadDeadline(time.Now().Add(waitLimit))
	_, b, err := conn.ReadMessage()
	if err != nil {
		return protocol.Frame{}, err
	}
	return protocol.DecodeWS(b)
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatal("timed out waiting")
		panic("unreachable")
	}
}

func dial(t *testing.T, opts Options) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := Dial(ctx, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDialWelcome(t *testing.T) {
	type seen struct {
		auth, token string
		closeErr    error
	}
	seenc := make(chan seen, 1)
	f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, r *http.Request, n uint64) {
		welcome(t, conn, 42, 512)
		seenc <- seen{r.Header.Get("Authorization"), r.URL.Query().Get("token"), drain(conn)}
	})
	c := dial(t, Options{
		URL:     f.url + "?token=abc",
		Header:  http.Header{"Authorization": {"Bearer xyz"}},
		Handler: func(Message) {},
	})
	if got, want := c.Ref(), (protocol.ClientRef{Server: "ext-1", ID: 42}); got != want {
		t.Errorf("Ref() = %v, want %v", got, want)
	}
	if got := c.MaxMessage(); got != 512 {
		t.Errorf("MaxMessage() = %d, want 512", got)
	}
	if c.Messages() != nil {
		t.Error("Messages() is not nil in handler style")
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() of a live client = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	s := recv(t, seenc)
	if s.auth != "Bearer xyz" || s.token != "abc" {
		t.Errorf("server saw Authorization %q, token %q", s.auth, s.token)
	}
	if !websocket.IsCloseError(s.closeErr, websocket.CloseNormalClosure) {
		t.Errorf("server read after Close: %v, want a normal close frame", s.closeErr)
	}
}

// payloadFor is message i's payload: i, then i%200 bytes of i, so that
// sizes vary and a reused buffer would show.
func payloadFor(i int) []byte {
	p := binary.BigEndian.AppendUint32(nil, uint32(i))
	return append(p, bytes.Repeat([]byte{byte(i)}, i%200)...)
}

// echoScript checks that n messages arrive in order and echoes each.
func echoScript(n int) script {
	return func(t *testing.T, conn *websocket.Conn, r *http.Request, _ uint64) {
		welcome(t, conn, 1, 1024)
		for i := range n {
			f, err := readUser(conn)
			if err != nil {
				t.Errorf("fake server: message %d: %v", i, err)
				return
			}
			if f.Kind != protocol.KindUser || f.Tag != uint16(i) || !bytes.Equal(f.Payload, payloadFor(i)) {
				t.Errorf("fake server: message %d: kind %v tag %d payload %x", i, f.Kind, f.Tag, f.Payload)
				return
			}
			if err := writeWS(conn, protocol.KindUser, f.Tag, f.Payload); err != nil {
				t.Errorf("fake server: echo %d: %v", i, err)
				return
			}
		}
		drain(conn)
	}
}

func TestMessagesInOrder(t *testing.T) {
	const n = 1000
	check := func(t *testing.T, got []Message) {
		t.Helper()
		if len(got) != n {
			t.Fatalf("got %d messages, want %d", len(got), n)
		}
		for i, m := range got {
			if m.Tag != uint16(i) || !bytes.Equal(m.Payload, payloadFor(i)) {
				t.Fatalf("message %d: tag %d payload %x", i, m.Tag, m.Payload)
			}
		}
	}
	send := func(t *testing.T, c *Client) {
		for i := range n {
			if err := c.Send(uint16(i), payloadFor(i)); err != nil {
				t.Errorf("Send %d: %v", i, err)
				return
			}
		}
	}

	t.Run("handler", func(t *testing.T) {
		f := newFakeServer(t, echoScript(n))
		var got []Message // only the read goroutine appends
		all := make(chan struct{})
		c := dial(t, Options{URL: f.url, Handler: func(m Message) {
			got = append(got, Message{m.Tag, bytes.Clone(m.Payload)})
			if len(got) == n {
				close(all)
			}
		}})
		send(t, c)
		recv(t, all)
		c.Close()
		check(t, got)
	})

	t.Run("channel", func(t *testing.T) {
		f := newFakeServer(t, echoScript(n))
		c := dial(t, Options{URL: f.url, QueueSize: 8})
		go send(t, c)
		var got []Message
		for len(got) < n {
			select {
			case m, ok := <-c.Messages():
				if !ok {
					t.Fatalf("Messages closed after %d: %v", len(got), c.Err())
				}
				got = append(got, m)
			case <-time.After(waitLimit):
				t.Fatalf("timed out after %d messages", len(got))
			}
		}
		c.Close()
		check(t, got)
	})
}

func TestConcurrentSend(t *testing.T) {
	const senders, each = 8, 100
	result := make(chan error, 1)
	f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
		welcome(t, conn, 1, 64)
		next := make([]uint32, senders)
		for range senders * each {
			m, err := readUser(conn)
			if err != nil {
				result <- err
				return
			}
			seq := binary.BigEndian.Uint32(m.Payload)
			if int(m.Tag) >= senders || seq != next[m.Tag] {
				result <- errors.New("out of order")
				return
			}
			next[m.Tag]++
		}
		result <- nil
		drain(conn)
	})
	c := dial(t, Options{URL: f.url, Handler: func(Message) {}})
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := c.Send(uint16(s), binary.BigEndian.AppendUint32(nil, uint32(i))); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := recv(t, result); err != nil {
		t.Fatalf("server: %v", err)
	}
}

// allSentinels lists every sentinel, to check that an error matches
// exactly the expected one.
var allSentinels = []error{
	ErrClosed, ErrProtocol, ErrMessageTooLarge, ErrRateLimited, ErrServerFull,
	ErrReadTimeout, ErrWriteTimeout, ErrSlowClient, ErrAuthRefused, ErrKicked, ErrShutdown,
}

func checkOnly(t *testing.T, err, want error) {
	t.Helper()
	for _, s := range allSentinels {
		if got := errors.Is(err, s); got != (s == want) {
			t.Errorf("errors.Is(%v, %v) = %v", err, s, got)
		}
	}
}

func TestCloseErrorIs(t *testing.T) {
	cases := map[protocol.Reason]error{
		protocol.ReasonMessageTooLarge: ErrMessageTooLarge,
		protocol.ReasonRateLimited:     ErrRateLimited,
		protocol.ReasonServerFull:      ErrServerFull,
		protocol.ReasonReadTimeout:     ErrReadTimeout,
		protocol.ReasonWriteTimeout:    ErrWriteTimeout,
		protocol.ReasonSlowClient:      ErrSlowClient,
		protocol.ReasonAuthRefused:     ErrAuthRefused,
		protocol.ReasonKicked:          ErrKicked,
		protocol.ReasonShutdown:        ErrShutdown,
		protocol.ReasonProtocol:        ErrProtocol,
		protocol.ReasonClientProtocol:  ErrProtocol,
		protocol.ReasonNone:            nil,
		protocol.Reason(999):           nil,
	}
	for r, want := range cases {
		err := error(&CloseError{Reason: r, Message: "detail"})
		checkOnly(t, err, want)
		if !strings.Contains(err.Error(), r.String()) || !strings.Contains(err.Error(), "detail") {
			t.Errorf("Error() = %q, want the reason %q and the message", err, r)
		}
	}
}

func TestDialRefused(t *testing.T) {
	for _, tc := range []struct {
		reason protocol.Reason
		want   error
	}{
		{protocol.ReasonAuthRefused, ErrAuthRefused},
		{protocol.ReasonServerFull, ErrServerFull},
		{protocol.ReasonShutdown, ErrShutdown},
	} {
		t.Run(tc.reason.String(), func(t *testing.T) {
			f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
				sendClose(conn, tc.reason, "go away")
				drain(conn)
			})
			c, err := Dial(context.Background(), Options{URL: f.url})
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			checkOnly(t, err, tc.want)
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Reason != tc.reason || ce.Message != "go away" {
				t.Errorf("Dial error %v (%T), want a *CloseError with the reason and message", err, err)
			}
		})
	}
}

func TestServerCloseMidSession(t *testing.T) {
	kickScript := func(reason protocol.Reason) script {
		return func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
			welcome(t, conn, 1, 64)
			writeWS(conn, protocol.KindUser, 7, []byte("last words"))
			sendClose(conn, reason, "cheating")
			drain(conn)
		}
	}
	checkEnded := func(t *testing.T, c *Client, want error) {
		t.Helper()
		select {
		case <-c.Done():
		case <-time.After(waitLimit):
			t.Fatal("client did not end")
		}
		checkOnly(t, c.Err(), want)
		var ce *CloseError
		if !errors.As(c.Err(), &ce) || ce.Message != "cheating" {
			t.Errorf("Err() = %v, want a *CloseError with the server's message", c.Err())
		}
		err := c.Send(1, nil)
		if !errors.Is(err, ErrClosed) || !errors.Is(err, want) {
			t.Errorf("Send after the end = %v, want ErrClosed and %v", err, want)
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close after the end: %v", err)
		}
	}

	t.Run("channel", func(t *testing.T) {
		f := newFakeServer(t, kickScript(protocol.ReasonKicked))
		c := dial(t, Options{URL: f.url})
		var got []Message
		timeout := time.After(waitLimit)
	loop:
		for {
			select {
			case m, ok := <-c.Messages():
				if !ok {
					break loop
				}
				got = append(got, m)
			case <-timeout:
				t.Fatal("Messages was not closed")
			}
		}
		if len(got) != 1 || got[0].Tag != 7 || string(got[0].Payload) != "last words" {
			t.Errorf("messages before the close: %+v", got)
		}
		// Err is set once the channel is closed, before Done.
		checkOnly(t, c.Err(), ErrKicked)
		checkEnded(t, c, ErrKicked)
	})

	t.Run("handler", func(t *testing.T) {
		f := newFakeServer(t, kickScript(protocol.ReasonRateLimited))
		var n atomic.Int32
		c := dial(t, Options{URL: f.url, Handler: func(Message) { n.Add(1) }})
		checkEnded(t, c, ErrRateLimited)
		if n.Load() != 1 {
			t.Errorf("handler called %d times, want 1", n.Load())
		}
	})
}

func TestServerDropsConnection(t *testing.T) {
	f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
		welcome(t, conn, 1, 64)
		conn.NetConn().Close() // no Close message, no close frame
	})
	c := dial(t, Options{URL: f.url})
	recv(t, c.Done())
	err := c.Err()
	var ce *CloseError
	if err == nil || errors.Is(err, ErrClosed) || errors.As(err, &ce) {
		t.Errorf("Err() = %v, want the I/O error", err)
	}
	if _, ok := <-c.Messages(); ok {
		t.Error("Messages not closed")
	}
}

func TestMessageTooLarge(t *testing.T) {
	first := make(chan protocol.Frame, 1)
	f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
		welcome(t, conn, 1, 16)
		m, err := readUser(conn)
		if err != nil {
			t.Errorf("fake server: %v", err)
		}
		first <- m
		drain(conn)
	})
	c := dial(t, Options{URL: f.url, Handler: func(Message) {}})
	err := c.Send(1, make([]byte, 17))
	checkOnly(t, err, ErrMessageTooLarge)
	if err := c.Send(2, make([]byte, 16)); err != nil {
		t.Fatalf("Send of the maximum: %v", err)
	}
	if m := recv(t, first); m.Tag != 2 || len(m.Payload) != 16 {
		t.Errorf("server's first message: tag %d, %d bytes; want the 16-byte message only", m.Tag, len(m.Payload))
	}
	if err := c.Err(); err != nil {
		t.Errorf("client ended: %v", err)
	}
}

func TestCloseIdempotent(t *testing.T) {
	closeErr := make(chan error, 1)
	f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
		welcome(t, conn, 1, 64)
		closeErr <- drain(conn)
	})
	c := dial(t, Options{URL: f.url})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}()
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}
	if !websocket.IsCloseError(recv(t, closeErr), websocket.CloseNormalClosure) {
		t.Error("server did not get a normal close frame")
	}
	if c.Err() != ErrClosed {
		t.Errorf("Err() = %v, want ErrClosed", c.Err())
	}
	if err := c.Send(1, nil); err != ErrClosed {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after Close")
	}
	if _, ok := <-c.Messages(); ok {
		t.Error("Messages not closed")
	}
}

// Close must not hang when the read loop is blocked on a full channel.
func TestCloseWithFullQueue(t *testing.T) {
	f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
		welcome(t, conn, 1, 64)
		for i := range 20 {
			if writeWS(conn, protocol.KindUser, uint16(i), nil) != nil {
				return
			}
		}
		drain(conn)
	})
	c := dial(t, Options{URL: f.url, QueueSize: 1})
	// Wait until the queue is full.
	deadline := time.Now().Add(waitLimit)
	for len(c.Messages()) < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	n := 0
	for range c.Messages() {
		n++
	}
	if n > 1 {
		t.Errorf("%d messages after Close from a queue of 1", n)
	}
	if c.Err() != ErrClosed {
		t.Errorf("Err() = %v, want ErrClosed", c.Err())
	}
}

func TestPingAnswered(t *testing.T) {
	pongs := make(chan string, 1)
	f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
		conn.SetPongHandler(func(s string) error {
			pongs <- s
			return nil
		})
		welcome(t, conn, 1, 64)
		if err := conn.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(waitLimit)); err != nil {
			t.Errorf("fake server: ping: %v", err)
		}
		drain(conn) // reading runs the pong handler
	})
	c := dial(t, Options{URL: f.url, Handler: func(Message) {}})
	if got := recv(t, pongs); got != "are you there" {
		t.Errorf("pong carries %q", got)
	}
	c.Close()
}

func TestReadTimeout(t *testing.T) {
	t.Run("silent server", func(t *testing.T) {
		f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
			welcome(t, conn, 1, 64)
			drain(conn)
		})
		c := dial(t, Options{URL: f.url, ReadTimeout: 50 * time.Millisecond, Handler: func(Message) {}})
		recv(t, c.Done())
		var ne net.Error
		if !errors.As(c.Err(), &ne) || !ne.Timeout() {
			t.Errorf("Err() = %v, want a deadline error", c.Err())
		}
	})

	// Pings keep an otherwise silent session alive past ReadTimeout. The
	// margins are wide (pings every fifth of the timeout).
	t.Run("pings extend it", func(t *testing.T) {
		const timeout = time.Second
		done := make(chan struct{})
		f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
			welcome(t, conn, 1, 64)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 8 { // 1.6 timeouts in all
					time.Sleep(timeout / 5)
					conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(waitLimit))
				}
				writeWS(conn, protocol.KindUser, 1, []byte("still here"))
			}()
			drain(conn)
			wg.Wait()
		})
		c := dial(t, Options{URL: f.url, ReadTimeout: timeout, Handler: func(m Message) {
			if string(m.Payload) == "still here" {
				close(done)
			}
		}})
		select {
		case <-done:
		case <-c.Done():
			t.Fatalf("client ended: %v", c.Err())
		case <-time.After(waitLimit):
			t.Fatal("timed out")
		}
	})
}

func TestDialTimeoutAndCancel(t *testing.T) {
	accepted := make(chan struct{}, 1)
	f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
		accepted <- struct{}{}
		drain(conn) // never welcomes
	})

	_, err := Dial(context.Background(), Options{URL: f.url, DialTimeout: 50 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial without a welcome = %v, want DeadlineExceeded", err)
	}
	recv(t, accepted)

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-accepted
		cancel()
	}()
	_, err = Dial(ctx, Options{URL: f.url})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with a cancelled context = %v, want Canceled", err)
	}
	cancel()
}

func TestDialHTTPRefusal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer srv.Close()
	_, err := Dial(context.Background(), Options{URL: "ws" + strings.TrimPrefix(srv.URL, "http")})
	if !errors.Is(err, websocket.ErrBadHandshake) || !strings.Contains(err.Error(), "403") {
		t.Errorf("Dial = %v, want a bad handshake naming HTTP 403", err)
	}
}

func TestInvalidOptions(t *testing.T) {
	for _, u := range []string{"", "http://127.0.0.1:1/", "ws:///path", "ws://[::1"} {
		if _, err := Dial(context.Background(), Options{URL: u}); err == nil {
			t.Errorf("Dial(%q) succeeded", u)
		}
		r := Reconnector{Options: Options{URL: u}}
		if err := r.Run(context.Background()); err == nil {
			t.Errorf("Run with URL %q succeeded", u)
		}
	}
}

func TestProtocolErrors(t *testing.T) {
	t.Run("before welcome", func(t *testing.T) {
		f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
			writeWS(conn, protocol.KindUser, 1, nil)
			drain(conn)
		})
		_, err := Dial(context.Background(), Options{URL: f.url})
		checkOnly(t, err, ErrProtocol)
	})
	t.Run("bad welcome", func(t *testing.T) {
		f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
			writeWS(conn, protocol.KindClientWelcome, 0, []byte{1})
			drain(conn)
		})
		_, err := Dial(context.Background(), Options{URL: f.url})
		checkOnly(t, err, ErrProtocol)
	})
	for name, send := range map[string]func(*websocket.Conn){
		"text":  func(c *websocket.Conn) { c.WriteMessage(websocket.TextMessage, []byte("hi")) },
		"short": func(c *websocket.Conn) { c.WriteMessage(websocket.BinaryMessage, []byte{16, 0}) },
		"close": func(c *websocket.Conn) { writeWS(c, protocol.KindClose, 0, []byte{0}) },
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
				welcome(t, conn, 1, 64)
				send(conn)
				drain(conn)
			})
			c := dial(t, Options{URL: f.url, Handler: func(Message) {}})
			recv(t, c.Done())
			checkOnly(t, c.Err(), ErrProtocol)
		})
	}
	t.Run("extension kind skipped", func(t *testing.T) {
		f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
			welcome(t, conn, 1, 64)
			writeWS(conn, protocol.LastExtensionKind, 5, []byte("a plugin's own"))
			writeWS(conn, protocol.KindUser, 6, []byte("now"))
			drain(conn)
		})
		c := dial(t, Options{URL: f.url})
		m := recv(t, c.Messages())
		if m.Tag != 6 || string(m.Payload) != "now" {
			t.Errorf("first message: %d %q, want the user message", m.Tag, m.Payload)
		}
	})
}

func TestReconnectorReconnects(t *testing.T) {
	f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, n uint64) {
		welcome(t, conn, n, 64)
		switch n {
		case 1:
			conn.NetConn().Close() // dropped without a reason
		case 2:
			sendClose(conn, protocol.ReasonShutdown, "draining")
			drain(conn)
		default:
			drain(conn) // stays until the client leaves
		}
	})
	type conn struct {
		c   *Client
		cur *Client
	}
	conns := make(chan conn, 8)
	r := &Reconnector{
		Options:    Options{URL: f.url, Handler: func(Message) {}},
		MinBackoff: time.Millisecond,
		MaxBackoff: 5 * time.Millisecond,
	}
	r.OnConnect = func(c *Client) { conns <- conn{c, r.Current()} }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()

	var last *Client
	for want := uint64(1); want <= 3; want++ {
		got := recv(t, conns)
		if got.c.Ref().ID != want {
			t.Fatalf("connection %d has ref %v", want, got.c.Ref())
		}
		if got.cur != got.c {
			t.Errorf("Current() in OnConnect is not the new client")
		}
		last = got.c
	}
	cancel()
	if err := recv(t, runErr); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if r.Current() != nil {
		t.Error("Current() not nil after Run")
	}
	if last.Err() != ErrClosed {
		t.Errorf("last client's Err() = %v, want ErrClosed (closed by Run)", last.Err())
	}
	select {
	case c := <-conns:
		t.Errorf("extra connection %v", c.c.Ref())
	default:
	}
}

func TestReconnectorStopsOnAuthRefused(t *testing.T) {
	for name, refuse := range map[string]func(*testing.T, *websocket.Conn, uint64){
		"at dial": func(_ *testing.T, conn *websocket.Conn, _ uint64) {
			sendClose(conn, protocol.ReasonAuthRefused, "token expired")
		},
		"mid-session": func(t *testing.T, conn *websocket.Conn, n uint64) {
			welcome(t, conn, n, 64)
			sendClose(conn, protocol.ReasonAuthRefused, "token expired")
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, n uint64) {
				switch n {
				case 1:
					welcome(t, conn, n, 64)
					conn.NetConn().Close()
					return
				case 2:
					// A refusal with another reason is retried.
					sendClose(conn, protocol.ReasonServerFull, "")
				default:
					refuse(t, conn, n)
				}
				drain(conn)
			})
			var connects atomic.Int32
			r := &Reconnector{
				Options:    Options{URL: f.url, Handler: func(Message) {}},
				MinBackoff: time.Millisecond,
				MaxBackoff: 5 * time.Millisecond,
				OnConnect:  func(*Client) { connects.Add(1) },
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			err := r.Run(ctx)
			checkOnly(t, err, ErrAuthRefused)
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Message != "token expired" {
				t.Errorf("Run = %v, want the server's CloseError", err)
			}
			want := int32(1)
			if name == "mid-session" {
				want = 2
			}
			if connects.Load() != want {
				t.Errorf("OnConnect called %d times, want %d", connects.Load(), want)
			}
			if got := f.n.Load(); got != 3 {
				t.Errorf("%d connections, want 3", got)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	var r Reconnector
	if p := r.policy(); p.Min != DefaultMinBackoff || p.Max != DefaultMaxBackoff {
		t.Errorf("zero bounds = %v, %v", p.Min, p.Max)
	}
	r.MinBackoff, r.MaxBackoff = time.Second, time.Millisecond
	if p := r.policy(); p.Min != time.Second || p.Max != time.Second {
		t.Errorf("inverted bounds = %v, %v", p.Min, p.Max)
	}
	// The waits double from MinBackoff up to MaxBackoff, each jittered
	// down by up to half.
	r.MinBackoff, r.MaxBackoff = 100*time.Millisecond, time.Second
	p := r.policy()
	for n, ceil := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second} {
		for range 100 {
			if d := p.Delay(n + 1); d < ceil/2 || d > ceil {
				t.Fatalf("wait after %d failures = %v, outside [%v, %v]", n+1, d, ceil/2, ceil)
			}
		}
	}
}

// A server that stops reading: Send fails once the socket buffers are
// full and WriteTimeout passes, which ends the client with that error;
// Close does not wait for a close answer longer than WriteTimeout.
func TestServerStopsReading(t *testing.T) {
	release := make(chan struct{})
	defer close(release) // before the fake server's cleanup waits for the script
	f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
		welcome(t, conn, 1, 1<<20)
		<-release
	})

	t.Run("send", func(t *testing.T) {
		c := dial(t, Options{URL: f.url, WriteTimeout: 50 * time.Millisecond, Handler: func(Message) {}})
		payload := make([]byte, 1<<20)
		var err error
		for i := 0; i < 1000 && err == nil; i++ {
			err = c.Send(1, payload)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Send to a server that does not read = %v, want a timeout", err)
		}
		recv(t, c.Done())
		if !errors.As(c.Err(), &ne) || !ne.Timeout() {
			t.Errorf("Err() = %v, want the write timeout", c.Err())
		}
		if err := c.Send(1, nil); !errors.Is(err, ErrClosed) || !errors.As(err, &ne) {
			t.Errorf("Send after the failure = %v, want ErrClosed and the cause", err)
		}
	})

	t.Run("close", func(t *testing.T) {
		c := dial(t, Options{URL: f.url, WriteTimeout: 50 * time.Millisecond, Handler: func(Message) {}})
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if c.Err() != ErrClosed {
			t.Errorf("Err() = %v, want ErrClosed", c.Err())
		}
	})
}
