package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
)

// clientRecorder is a test plugin for client hooks. Clients sending the
// header X-Token: bad are refused; tag 99 is echoed back.
type clientRecorder struct {
	mu      sync.Mutex
	host    plugins.Host
	clients map[uint64]plugins.Client
	msgs    map[uint64][]plugins.Message
	gone    map[uint64]*plugins.CloseError
	failed  []plugins.ClientRef
}

func newClientRecorder() *clientRecorder {
	return &clientRecorder{
		clients: make(map[uint64]plugins.Client),
		msgs:    make(map[uint64][]plugins.Message),
		gone:    make(map[uint64]*plugins.CloseError),
	}
}

func (r *clientRecorder) Start(_ context.Context, h plugins.Host) error {
	r.mu.Lock()
	r.host = h
	r.mu.Unlock()
	return nil
}

func (r *clientRecorder) Authenticate(info plugins.ClientInfo) error {
	if info.Header.Get("X-Token") == "bad" || info.Query.Get("token") == "bad" {
		return errors.New("unknown token")
	}
	return nil
}

func (r *clientRecorder) ClientConnected(c plugins.Client) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clients[c.Ref().ID] = c
	return nil
}

func (r *clientRecorder) ClientMessage(c plugins.Client, m plugins.Message) error {
	r.mu.Lock()
	r.msgs[c.Ref().ID] = append(r.msgs[c.Ref().ID], plugins.Message{Tag: m.Tag, Payload: bytes.Clone(m.Payload)})
	r.mu.Unlock()
	if m.Tag == 99 {
		return c.Send(99, m.Payload)
	}
	return nil
}

func (r *clientRecorder) ClientDisconnected(c plugins.Client, reason error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ce *plugins.CloseError
	errors.As(reason, &ce)
	r.gone[c.Ref().ID] = ce
	return nil
}

func (r *clientRecorder) ClientSendFailed(ref plugins.ClientRef, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if errors.Is(err, plugins.ErrClientGone) {
		r.failed = append(r.failed, ref)
	}
	return nil
}

// client waits until the plugin has seen client id connect and returns it.
func (r *clientRecorder) client(t *testing.T, id uint64) plugins.Client {
	t.Helper()
	var p plugins.Client
	testutil.WaitFor(t, "plugin has the client", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		p = r.clients[id]
		return p != nil
	})
	return p
}

func (r *clientRecorder) goneReason(id uint64) *plugins.CloseError {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gone[id]
}

func (r *clientRecorder) messages(id uint64) []plugins.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]plugins.Message(nil), r.msgs[id]...)
}

func (r *clientRecorder) failedRefs() []plugins.ClientRef {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]plugins.ClientRef(nil), r.failed...)
}

// wsClient is a bare WebSocket game client for tests.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	ref  plugins.ClientRef
}

// dialClient connects to an external server and reads its welcome.
func dialClient(t *testing.T, s *clustertest.Server, header http.Header) *wsClient {
	t.Helper()
	c, closeMsg, err := tryDialClient(t, s, header)
	if err != nil {
		t.Fatal(err)
	}
	if closeMsg != nil {
		t.Fatalf("refused: %s %s", closeMsg.Reason, closeMsg.Message)
	}
	return c
}

func tryDialClient(t *testing.T, s *clustertest.Server, header http.Header) (*wsClient, *protocol.Close, error) {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+s.Addr()+"/", header)
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { conn.Close() })
	// Answer pings, ignoring a failed pong: the server may already have
	// closed, and its Close message is still to be read.
	conn.SetPingHandler(func(data string) error {
		conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		return nil
	})
	c := &wsClient{t: t, conn: conn}
	f := c.next()
	switch f.Kind {
	case protocol.KindClientWelcome:
		var w protocol.ClientWelcome
		if err := w.Decode(f.Payload); err != nil {
			t.Fatal(err)
		}
		c.ref = plugins.ClientRef{Server: w.ServerID, ID: w.ClientID}
		return c, nil, nil
	case protocol.KindClose:
		var cl protocol.Close
		if err := cl.Decode(f.Payload); err != nil {
			t.Fatal(err)
		}
		return c, &cl, nil
	}
	t.Fatalf("unexpected first message %s", f.Kind)
	return nil, nil, nil
}

// next reads one message, failing the test after 10 s.
func (c *wsClient) next() protocol.Frame {
	c.t.Helper()
	f, err := c.tryNext()
	if err != nil {
		c.t.Fatalf("client read: %v", err)
	}
	return f
}

func (c *wsClient) tryNext() (protocol.Frame, error) {
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := c.conn.ReadMessage()
	if err != nil {
		return protocol.Frame{}, err
	}
	return protocol.DecodeWS(b)
}

func (c *wsClient) send(tag uint16, payload []byte) error {
	return c.conn.WriteMessage(websocket.BinaryMessage, protocol.AppendWS(nil, protocol.KindUser, tag, payload))
}

// closeReason reads until the server's Close and returns its reason.
func (c *wsClient) closeReason() protocol.Reason {
	c.t.Helper()
	for {
		f, err := c.tryNext()
		if err != nil {
			c.t.Fatalf("no Close before the connection ended: %v", err)
		}
		if f.Kind == protocol.KindClose {
			var cl protocol.Close
			if err := cl.Decode(f.Payload); err != nil {
				c.t.Fatal(err)
			}
			return cl.Reason
		}
	}
}

// echo checks the client still works: a tag-99 message comes back.
func (c *wsClient) echo() {
	c.t.Helper()
	if err := c.send(99, []byte("ping")); err != nil {
		c.t.Fatal(err)
	}
	for {
		f := c.next()
		if f.Kind == protocol.KindUser && f.Tag == 99 {
			return
		}
	}
}

// startClientServer starts a1 of g1 alone, with cl as its group's client
// settings, hosting the returned recorder.
func startClientServer(t *testing.T, cl config.Clients) (*clustertest.Server, *clientRecorder) {
	t.Helper()
	rec := newClientRecorder()
	return newSystem(t, clientSystem(cl)).StartServer("g1", "a1", rec), rec
}

func TestClientsRoundTripAcrossServers(t *testing.T) {
	sys := newSystem(t, clientSystem(config.Clients{}))
	world := newClientRecorder()
	sys.StartServer("g2", "b1", world)
	ra, rb := newClientRecorder(), newClientRecorder()
	a1 := sys.StartServer("g1", "a1", ra)
	a2 := sys.StartServer("g1", "a2", rb)
	c1 := dialClient(t, a1, http.Header{"X-Player": {"p1"}})
	c2 := dialClient(t, a2, nil)
	if c1.ref.Server != "a1" || c2.ref.Server != "a2" || c1.ref.ID == 0 {
		t.Fatalf("refs %v %v", c1.ref, c2.ref)
	}
	// Later hooks see what Authenticate saw.
	if info := ra.client(t, c1.ref.ID).Info(); info.Header.Get("X-Player") != "p1" || info.Ref != c1.ref || info.RemoteAddr == "" {
		t.Fatalf("Info() = %+v", info)
	}
	testutil.WaitFor(t, "g2 sees both client servers", func() bool {
		g, err := world.host.RemoteGroup("g1")
		if err != nil {
			return false
		}
		n := 0
		for _, s := range g.Servers() {
			if s.State() == plugins.StateConnected {
				n++
			}
		}
		return n == 2
	})

	// Client messages reach the plugin in order.
	for i := 0; i < 100; i++ {
		if err := c1.send(uint16(i%50), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, "100 messages", func() bool { return len(ra.messages(c1.ref.ID)) == 100 })
	for i, m := range ra.messages(c1.ref.ID) {
		if m.Tag != uint16(i%50) || string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d: %d %q", i, m.Tag, m.Payload)
		}
	}

	// The internal server pushes to one client, then to both at once.
	if err := world.host.SendToClient(c1.ref, 7, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if f := c1.next(); f.Kind != protocol.KindUser || f.Tag != 7 || string(f.Payload) != "one" {
		t.Fatalf("got %v %d %q", f.Kind, f.Tag, f.Payload)
	}
	if err := world.host.SendToClients([]plugins.ClientRef{c1.ref, c2.ref}, 8, []byte("all")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wsClient{c1, c2} {
		if f := c.next(); f.Tag != 8 || string(f.Payload) != "all" {
			t.Fatalf("got %d %q", f.Tag, f.Payload)
		}
	}

	// A client that leaves: the plugin learns why; sends to it fail.
	c2.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	testutil.WaitFor(t, "c2 disconnected", func() bool { return rb.goneReason(c2.ref.ID) != nil })
	if le := rb.goneReason(c2.ref.ID); !le.ByPeer {
		t.Fatalf("reason %v, want closed by the client", le)
	}
	if err := rb.host.SendToClient(c2.ref, 1, nil); !errors.Is(err, plugins.ErrClientGone) {
		t.Fatalf("local send to a gone client = %v", err)
	}
	if err := world.host.SendToClient(c2.ref, 1, []byte("late")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "send failure reported", func() bool {
		f := world.failedRefs()
		return len(f) == 1 && f[0] == c2.ref
	})
	if err := world.host.SendToClient(plugins.ClientRef{Server: "nowhere", ID: 1}, 1, nil); !errors.Is(err, plugins.ErrNoRoute) {
		t.Fatalf("send to an unknown server = %v", err)
	}
	c1.echo()
}

func TestClientRefusedByInternalServer(t *testing.T) {
	sys := newSystem(t, clientSystem(config.Clients{}))
	b1 := sys.StartServer("g2", "b1")
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+b1.Addr()+"/", nil)
	if err == nil {
		t.Fatal("a WebSocket client linked to an internal server")
	}
	if resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("response %v, err %v", resp, err)
	}
	testutil.WaitFor(t, "logged", func() bool {
		return strings.Contains(sys.Logs(), `"reason":"`+protocol.ReasonClientProtocol.String()+`"`)
	})
}

func TestClientLimits(t *testing.T) {
	cl := config.Clients{
		MaxMessageBytes: 1024,
		Rate:            20,
		Burst:           20,
		MaxClients:      3,
		ReadTimeout:     config.Duration(time.Second),
		WriteTimeout:    config.Duration(time.Second),
		SendQueueBytes:  8 << 10,
	}
	a1, rec := startClientServer(t, cl)
	bystander := dialClient(t, a1, nil)

	check := func(t *testing.T, c *wsClient, want protocol.Reason) {
		t.Helper()
		if got := c.closeReason(); got != want {
			t.Fatalf("reason %s, want %s", got, want)
		}
		testutil.WaitFor(t, "plugin saw the disconnect", func() bool { return rec.goneReason(c.ref.ID) != nil })
		if got := rec.goneReason(c.ref.ID).Reason; got != want {
			t.Fatalf("plugin saw reason %s, want %s", got, want)
		}
		bystander.echo()
	}

	t.Run("message too large", func(t *testing.T) {
		c := dialClient(t, a1, nil)
		c.send(1, make([]byte, 1025))
		check(t, c, protocol.ReasonMessageTooLarge)
	})
	t.Run("message at the limit is fine", func(t *testing.T) {
		c := dialClient(t, a1, nil)
		c.send(99, make([]byte, 1024))
		if f := c.next(); f.Tag != 99 || len(f.Payload) != 1024 {
			t.Fatalf("echo %d %d", f.Tag, len(f.Payload))
		}
		c.conn.Close()
		testutil.WaitFor(t, "gone", func() bool { return rec.goneReason(c.ref.ID) != nil })
	})
	t.Run("rate limited", func(t *testing.T) {
		c := dialClient(t, a1, nil)
		for i := 0; i < 300; i++ {
			if c.send(1, []byte("x")) != nil {
				break
			}
		}
		check(t, c, protocol.ReasonRateLimited)
	})
	t.Run("server full", func(t *testing.T) {
		c1 := dialClient(t, a1, nil)
		c2 := dialClient(t, a1, nil)
		_, refused, err := tryDialClient(t, a1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if refused == nil || refused.Reason != protocol.ReasonServerFull {
			t.Fatalf("fourth client: %v", refused)
		}
		bystander.echo()
		c1.conn.Close()
		c2.conn.Close()
		testutil.WaitFor(t, "room again", func() bool { return a1.Cluster().Stats().Clients == 1 })
	})
	t.Run("authentication refused", func(t *testing.T) {
		_, refused, err := tryDialClient(t, a1, http.Header{"X-Token": {"bad"}})
		if err != nil {
			t.Fatal(err)
		}
		if refused == nil || refused.Reason != protocol.ReasonAuthRefused || refused.Message != "unknown token" {
			t.Fatalf("refusal %+v", refused)
		}
		bystander.echo()
	})
	t.Run("read timeout", func(t *testing.T) {
		start := time.Now()
		c := dialClient(t, a1, nil)
		// A client that answers no ping is silent past ReadTimeout, but
		// not closed before it; the bystander keeps talking meanwhile (its
		// deadline is set beyond ReadTimeout and kept while enough of it
		// is left).
		closed := make(chan time.Duration, 1)
		c.conn.SetPingHandler(func(string) error { return nil }) // silent: no pong
		go func() {
			c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				if _, _, err := c.conn.ReadMessage(); err != nil {
					closed <- time.Since(start)
					return
				}
			}
		}()
		for i := 0; i < 8; i++ {
			bystander.echo()
			time.Sleep(200 * time.Millisecond)
		}
		if el := <-closed; el < time.Second {
			t.Fatalf("closed %s after the dial, before ReadTimeout (1s)", el)
		}
		testutil.WaitFor(t, "plugin saw the disconnect", func() bool { return rec.goneReason(c.ref.ID) != nil })
		if got := rec.goneReason(c.ref.ID).Reason; got != protocol.ReasonReadTimeout {
			t.Fatalf("plugin saw reason %s, want ReadTimeout", got)
		}
		bystander.echo()
	})
	t.Run("slow client", func(t *testing.T) {
		c := dialClient(t, a1, nil)
		p := rec.client(t, c.ref.ID)
		var err error
		for i := 0; i < 100_000 && err == nil; i++ {
			err = p.Send(5, make([]byte, 1000))
		}
		if !errors.Is(err, plugins.ErrClientGone) {
			t.Fatalf("Send to a client that never reads = %v", err)
		}
		check(t, c, protocol.ReasonSlowClient)
	})
	t.Run("kicked", func(t *testing.T) {
		c := dialClient(t, a1, nil)
		p := rec.client(t, c.ref.ID)
		p.Kick("cheating")
		check(t, c, protocol.ReasonKicked)
	})
	t.Run("text messages are a protocol error", func(t *testing.T) {
		c := dialClient(t, a1, nil)
		c.conn.WriteMessage(websocket.TextMessage, []byte("hello"))
		check(t, c, protocol.ReasonProtocol)
	})
}

func TestShutdownTellsClients(t *testing.T) {
	a1, rec := startClientServer(t, config.Clients{})
	c := dialClient(t, a1, nil)
	done := make(chan error, 1)
	go func() { done <- a1.Cluster().Shutdown(testutil.Context(t)) }()
	if r := c.closeReason(); r != protocol.ReasonShutdown {
		t.Fatalf("reason %s", r)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rec.goneReason(c.ref.ID) == nil {
		t.Fatal("plugin did not see the client go")
	}
}

func TestShutdownTellsBusyClients(t *testing.T) {
	// Messages flow to every client as Shutdown begins, so the flusher
	// often holds a client's queue when Shutdown closes it and may resume
	// only after the server has stopped starting goroutines: the Close
	// must still reach each client, after what was sent before it.
	const n = 16
	a1, rec := startClientServer(t, config.Clients{SendQueueBytes: 64 << 20})
	cs := make([]*wsClient, n)
	ps := make([]plugins.Client, n)
	for i := range cs {
		cs[i] = dialClient(t, a1, nil)
		ps[i] = rec.client(t, cs[i].ref.ID)
	}
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for {
			for _, p := range ps {
				select {
				case <-stop:
					return
				default:
				}
				p.Send(7, []byte("busy"))
			}
		}
	}()
	reasons := make(chan error, n)
	for _, c := range cs {
		go func() {
			for {
				f, err := c.tryNext()
				switch {
				case err != nil:
					reasons <- fmt.Errorf("client %s: no Close before the connection ended: %w", c.ref, err)
					return
				case f.Kind == protocol.KindClose:
					var cl protocol.Close
					if err := cl.Decode(f.Payload); err != nil || cl.Reason != protocol.ReasonShutdown {
						reasons <- fmt.Errorf("client %s: Close %s (%v)", c.ref, cl.Reason, err)
						return
					}
					reasons <- nil
					return
				}
			}
		}()
	}
	err := a1.Cluster().Shutdown(testutil.Context(t))
	close(stop)
	<-sent
	if err != nil {
		t.Fatal(err)
	}
	for range cs {
		if err := <-reasons; err != nil {
			t.Error(err)
		}
	}
}

func TestClientWriteTimeout(t *testing.T) {
	// A client that stops reading while its send queue is large enough to
	// never overflow: the write deadline ends it instead. It cannot be told
	// (it does not read); the plugin sees the reason.
	cl := config.Clients{
		MaxMessageBytes: 1024,
		SendQueueBytes:  64 << 20,
		WriteTimeout:    config.Duration(500 * time.Millisecond),
	}
	a1, rec := startClientServer(t, cl)
	bystander := dialClient(t, a1, nil)
	c := dialClient(t, a1, nil)
	p := rec.client(t, c.ref.ID)
	payload := make([]byte, 64<<10)
	var err error
	for i := 0; i < 1000 && err == nil; i++ { // 64 MiB at most
		err = p.Send(5, payload)
		if rec.goneReason(c.ref.ID) != nil {
			break
		}
	}
	testutil.WaitFor(t, "write timeout", func() bool { return rec.goneReason(c.ref.ID) != nil })
	if got := rec.goneReason(c.ref.ID).Reason; got != protocol.ReasonWriteTimeout {
		t.Fatalf("reason %s, want %s", got, protocol.ReasonWriteTimeout)
	}
	bystander.echo()
}

func TestClientStallsThenCatchesUp(t *testing.T) {
	// Sends to a client that keeps up are written on the sender's
	// goroutine, without blocking; once its socket is full, the rest of a
	// frame and everything after it go to a writer goroutine, and pings
	// queue behind them. A client that stops reading for a while and then
	// reads must get every message whole and in order, sizes around the
	// WebSocket header boundaries included.
	//
	// The client answers no ping until it reads its way to it, so the read
	// timeout must cover the stall plus reading ~7 MB under -race on a
	// loaded machine (1 s did not, once); the stall is longer than the ping
	// interval, so a ping falls due while the socket is full.
	const readTimeout = 6 * time.Second // a ping every 2 s
	cl := config.Clients{
		MaxMessageBytes: 1 << 20,
		SendQueueBytes:  256 << 20,
		ReadTimeout:     config.Duration(readTimeout),
	}
	a1, rec := startClientServer(t, cl)
	c := dialClient(t, a1, nil)
	p := rec.client(t, c.ref.ID)
	sizes := []int{0, 1, 121, 122, 123, 124, 125, 126, 65531, 65532, 65533, 200_000}
	const n = 600
	payload := func(i int) []byte {
		b := make([]byte, sizes[i%len(sizes)])
		for j := range b {
			b[j] = byte(i + j)
		}
		return b
	}
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if err := p.Send(uint16(i), payload(i)); err != nil {
				sent <- err
				return
			}
			if i == n/3 {
				time.Sleep(400 * time.Millisecond) // a ping goes out meanwhile
			}
		}
		sent <- nil
	}()
	time.Sleep(readTimeout/3 + 200*time.Millisecond) // the client stalls: its socket fills up
	for i := range n {
		f, err := c.tryNext()
		if err != nil {
			t.Fatalf("message %d: client read: %v (the server ended it: %v)", i, err, rec.goneReason(c.ref.ID))
		}
		if f.Kind != protocol.KindUser || f.Tag != uint16(i) || !bytes.Equal(f.Payload, payload(i)) {
			t.Fatalf("message %d: got %s tag %d with %d bytes", i, f.Kind, f.Tag, len(f.Payload))
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if r := rec.goneReason(c.ref.ID); r != nil {
		t.Fatalf("client ended: %v", r)
	}
	c.echo()
}

func TestSlowClientDoesNotDelayOthersPings(t *testing.T) {
	// One client stops reading while a large message is being written to
	// it, which holds its connection until the write timeout. Pings to
	// the others must go on: an idle client lives on pings (its pongs
	// renew the server's read deadline), and must outlive several read
	// timeouts meanwhile.
	cl := config.Clients{
		MaxMessageBytes: 16 << 20,
		SendQueueBytes:  64 << 20,
		ReadTimeout:     config.Duration(2 * time.Second), // pings every 667 ms; 2 s leaves room for a loaded machine
		WriteTimeout:    config.Duration(6 * time.Second),
	}
	a1, rec := startClientServer(t, cl)
	idle := dialClient(t, a1, nil)
	stalled := dialClient(t, a1, nil)
	go func() { // the idle client reads, so it answers pings
		for {
			if _, err := idle.tryNext(); err != nil {
				return
			}
		}
	}()
	if err := rec.client(t, stalled.ref.ID).Send(1, make([]byte, 12<<20)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4500 * time.Millisecond) // over two read timeouts of the idle client, within the stalled write
	if r := rec.goneReason(idle.ref.ID); r != nil {
		t.Fatalf("the idle client was disconnected while another stalled: %v", r)
	}
}
