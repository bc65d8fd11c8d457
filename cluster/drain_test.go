package cluster_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/registry"
)

// getDirectory fetches GET /servers from s over HTTP.
func getDirectory(t *testing.T, s *clustertest.Server, header http.Header) (cluster.Directory, *http.Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(testutil.Context(t), http.MethodGet, "http://"+s.Addr()+cluster.DirectoryPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d cluster.Directory
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
			t.Fatal(err)
		}
	}
	return d, resp
}

func ids(d cluster.Directory) string {
	var out []string
	for _, s := range d.Servers {
		out = append(out, s.ID)
	}
	return strings.Join(out, ",")
}

// waitDirectory polls s's directory until it lists want (IDs in order).
func waitDirectory(t *testing.T, s *clustertest.Server, want string) cluster.Directory {
	t.Helper()
	var d cluster.Directory
	testutil.WaitFor(t, "directory lists "+want, func() bool {
		d, _ = getDirectory(t, s, nil)
		return ids(d) == want
	})
	return d
}

func TestDirectoryListsTheGroupLeastLoadedFirst(t *testing.T) {
	sys := newSystem(t, clientSystem(config.Clients{MaxClients: 10, AllowedOrigins: []string{"https://game.example"}}))
	sys.StartServer("g2", "b1", newClientRecorder())
	a1 := sys.StartServer("g1", "a1", newClientRecorder())
	a2 := sys.StartServer("g1", "a2", newClientRecorder())
	a3 := sys.StartServer("g1", "a3", newClientRecorder())
	dialClient(t, a1, nil)
	dialClient(t, a1, nil)
	dialClient(t, a2, nil)

	// Every server answers the same list, itself included.
	for _, s := range []*clustertest.Server{a1, a2, a3} {
		d := waitDirectory(t, s, "a3,a2,a1")
		want := map[string]int{"a1": 2, "a2": 1, "a3": 0}
		for _, e := range d.Servers {
			byID := sys.Server(e.ID)
			if e.Players != want[e.ID] || e.Capacity != 10 || e.Draining || e.URL != byID.URL() {
				t.Fatalf("from %s: entry %+v, want %d players at %s", s.ID(), e, want[e.ID], byID.URL())
			}
		}
		if d.Group != "g1" || d.Partial {
			t.Fatalf("from %s: %+v", s.ID(), d)
		}
	}

	// A member whose load cannot be learned is listed, unknown, and the
	// answer says it is partial.
	ghost := sys.Hub().Connector()
	t.Cleanup(func() { ghost.Close() })
	if err := ghost.Register(testutil.Context(t), registry.Member{ID: "a0", Group: "g1", Address: "127.0.0.1:1", Incarnation: 1}); err != nil {
		t.Fatal(err)
	}
	d := waitDirectory(t, a1, "a3,a2,a1,a0")
	if last := d.Servers[3]; !d.Partial || last.Players != -1 || last.URL != "ws://127.0.0.1:1/" {
		t.Fatalf("%+v", d)
	}

	_, resp := getDirectory(t, a1, http.Header{"Origin": {"https://game.example"}})
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://game.example" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("headers %v", resp.Header)
	}
	if _, resp := getDirectory(t, a1, http.Header{"Origin": {"https://evil.example"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %s", resp.Status)
	}
	resp, err := http.Post("http://"+a1.Addr()+cluster.DirectoryPath, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %s", resp.Status)
	}
}

// readMove reads messages until a Move and returns it.
func (c *wsClient) readMove() protocol.Move {
	c.t.Helper()
	for {
		f := c.next()
		if f.Kind == protocol.KindClose {
			c.t.Fatalf("closed before a Move: %x", f.Payload)
		}
		if f.Kind != protocol.KindClientMove {
			continue
		}
		var m protocol.Move
		if err := m.Decode(f.Payload); err != nil {
			c.t.Fatal(err)
		}
		return m
	}
}

func TestDrainMovesClientsAndStopsOnceTheyLeft(t *testing.T) {
	// A drain timeout the test never waits for: the server must stop as
	// soon as its clients have moved.
	sys := newSystem(t, clientSystem(config.Clients{DrainTimeout: config.Duration(time.Hour)}))
	sys.StartServer("g2", "b1", newClientRecorder())
	rec := newClientRecorder()
	a1 := sys.StartServer("g1", "a1", rec)
	a2 := sys.StartServer("g1", "a2", newClientRecorder())
	a3 := sys.StartServer("g1", "a3", newClientRecorder())
	dialClient(t, a3, nil) // a3 is busier than a2
	c1, c2 := dialClient(t, a1, nil), dialClient(t, a1, nil)
	waitDirectory(t, a1, "a2,a3,a1")

	done := make(chan error, 1)
	go func() { done <- a1.Cluster().Drain(testutil.Context(t)) }()
	for _, c := range []*wsClient{c1, c2} {
		m := c.readMove()
		if m.Reason != protocol.ReasonDraining || strings.Join(m.URLs, " ") != a2.URL()+" "+a3.URL() {
			t.Fatalf("move %+v, want %s then %s", m, a2.URL(), a3.URL())
		}
	}
	if err := a1.Cluster().Ready(); !errors.Is(err, cluster.ErrNotReady) || !strings.Contains(err.Error(), "draining") {
		t.Fatalf("Ready() = %v", err)
	}
	if err := a1.Cluster().BeginDrain(); !errors.Is(err, cluster.ErrDraining) {
		t.Fatalf("second drain: %v", err)
	}
	// A new client is refused; the others list a1 as draining, last.
	if _, cl, err := tryDialClient(t, a1, nil); err != nil || cl == nil || cl.Reason != protocol.ReasonDraining {
		t.Fatalf("connect while draining: %+v %v", cl, err)
	}
	d := waitDirectory(t, a2, "a2,a3,a1")
	if !d.Servers[2].Draining {
		t.Fatalf("%+v", d)
	}
	for _, m := range sys.Hub().Members("g1") {
		if (m.Meta[registry.MetaDraining] == "1") != (m.ID == "a1") {
			t.Fatalf("registry: %+v", m)
		}
	}
	// The session goes on after the Move.
	if err := c1.send(99, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if f := c1.next(); f.Kind != protocol.KindUser || string(f.Payload) != "still here" {
		t.Fatalf("echo %+v", f)
	}
	select {
	case err := <-done:
		t.Fatalf("drain ended with clients still connected: %v", err)
	default:
	}
	// The clients move (make before break) and leave: the drain ends.
	dialClient(t, a2, nil)
	dialClient(t, a2, nil)
	c1.conn.Close()
	c2.conn.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	<-a1.Cluster().Done()
	if rec.goneReason(c1.ref.ID) == nil {
		t.Fatal("plugin did not see the client go")
	}
}

func TestDrainTimeoutClosesTheRestWithDraining(t *testing.T) {
	sys := newSystem(t, clientSystem(config.Clients{DrainTimeout: config.Duration(50 * time.Millisecond)}))
	sys.StartServer("g2", "b1", newClientRecorder())
	a1 := sys.StartServer("g1", "a1", newClientRecorder())
	c := dialClient(t, a1, nil)
	if err := a1.Cluster().BeginDrain(); err != nil {
		t.Fatal(err)
	}
	// No other server: the Move names none.
	if m := c.readMove(); len(m.URLs) != 0 {
		t.Fatalf("move %+v", m)
	}
	if r := c.closeReason(); r != protocol.ReasonDraining {
		t.Fatalf("reason %s", r)
	}
	<-a1.Cluster().Done()
	if err := a1.Cluster().Drain(testutil.Context(t)); !errors.Is(err, cluster.ErrServerClosed) {
		t.Fatalf("drain of a stopped server: %v", err)
	}
}

func TestDrainOfAnInternalServerShutsItDown(t *testing.T) {
	sys := newSystem(t, clientSystem(config.Clients{}))
	b1 := sys.StartServer("g2", "b1", newClientRecorder())
	if err := b1.Cluster().BeginDrain(); err != nil {
		t.Fatal(err)
	}
	// Refused at once: the first drain began, whether or not its
	// shutdown has started yet.
	if err := b1.Cluster().BeginDrain(); !errors.Is(err, cluster.ErrDraining) && !errors.Is(err, cluster.ErrServerClosed) {
		t.Fatalf("second BeginDrain: %v", err)
	}
	if err := b1.Cluster().Drain(testutil.Context(t)); !errors.Is(err, cluster.ErrDraining) && !errors.Is(err, cluster.ErrServerClosed) {
		t.Fatalf("third drain: %v", err)
	}
	<-b1.Cluster().Done()
}

func TestDrainOfAServerNeverStartedReturns(t *testing.T) {
	sys := newSystem(t, clientSystem(config.Clients{}))
	s := sys.NewUnstarted(cluster.Options{Group: "g1", ID: "a1"})
	if err := s.Drain(testutil.Context(t)); !errors.Is(err, cluster.ErrServerClosed) {
		t.Fatalf("Drain: %v", err)
	}
	if err := s.BeginDrain(); !errors.Is(err, cluster.ErrServerClosed) {
		t.Fatalf("BeginDrain: %v", err)
	}
}

func TestDrainingCloseFrameSaysGoingAway(t *testing.T) {
	sys := newSystem(t, clientSystem(config.Clients{DrainTimeout: config.Duration(time.Hour)}))
	sys.StartServer("g2", "b1", newClientRecorder())
	a1 := sys.StartServer("g1", "a1", newClientRecorder())
	stay := dialClient(t, a1, nil)
	if err := a1.Cluster().BeginDrain(); err != nil {
		t.Fatal(err)
	}
	stay.readMove()
	c, cl, err := tryDialClient(t, a1, nil)
	if err != nil || cl == nil || cl.Reason != protocol.ReasonDraining {
		t.Fatalf("connect while draining: %+v %v", cl, err)
	}
	_, err = c.tryNext()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway || ce.Text != "draining" {
		t.Fatalf("close frame: %v, want 1001 draining", err)
	}
	stay.conn.Close()
	<-a1.Cluster().Done()
}
