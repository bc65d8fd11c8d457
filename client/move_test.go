package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudrift/cloudrift/protocol"
)

// welcomeAs greets a client as server id.
func welcomeAs(t *testing.T, conn *websocket.Conn, server string, id uint64) {
	w := protocol.ClientWelcome{ServerID: server, ClientID: id, MaxMessage: 1024}
	if err := writeWS(conn, protocol.KindClientWelcome, 0, w.AppendTo(nil)); err != nil {
		t.Errorf("fake server: welcome: %v", err)
	}
}

func sendMove(t *testing.T, conn *websocket.Conn, urls ...string) {
	m := protocol.Move{Reason: protocol.ReasonDraining, URLs: urls}
	if err := writeWS(conn, protocol.KindClientMove, 0, m.AppendTo(nil)); err != nil {
		t.Errorf("fake server: move: %v", err)
	}
}

// TestMoveVectors feeds the client every valid Move of the protocol's
// vectors: each arrives on Moved as it decodes, and the session goes on.
func TestMoveVectors(t *testing.T) {
	data, err := os.ReadFile("../protocol/testdata/vectors/session.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []struct {
			Name    string
			Kind    protocol.Kind
			Hex     string
			Message struct {
				Reason protocol.Reason
				URLs   []string
			}
		}
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range file.Vectors {
		if v.Kind != protocol.KindClientMove {
			continue
		}
		n++
		msg, err := hex.DecodeString(v.Hex)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(v.Name, func(t *testing.T) {
			f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
				welcome(t, conn, 1, 64)
				conn.WriteMessage(websocket.BinaryMessage, msg)
				writeWS(conn, protocol.KindUser, 9, []byte("still here"))
				drain(conn)
			})
			c := dial(t, Options{URL: f.url})
			m := recv(t, c.Moved())
			if m.Reason != v.Message.Reason || !slices.Equal(m.URLs, v.Message.URLs) {
				t.Errorf("Moved gave %+v, want %+v", m, v.Message)
			}
			if got := recv(t, c.Messages()); got.Tag != 9 {
				t.Errorf("after the Move: tag %d", got.Tag)
			}
			if c.Err() != nil {
				t.Errorf("the session ended: %v", c.Err())
			}
		})
	}
	if n == 0 {
		t.Fatal("session.json has no Move")
	}
}

// A second Move replaces one nobody received.
func TestMovedKeepsTheLatest(t *testing.T) {
	f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
		welcome(t, conn, 1, 64)
		sendMove(t, conn, "ws://a/")
		sendMove(t, conn, "ws://b/")
		writeWS(conn, protocol.KindUser, 1, nil)
		drain(conn)
	})
	c := dial(t, Options{URL: f.url})
	recv(t, c.Messages()) // both Moves were read before it
	if m := recv(t, c.Moved()); !slices.Equal(m.URLs, []string{"ws://b/"}) {
		t.Errorf("Moved gave %v, want the second Move's", m.URLs)
	}
}

// failovers collects a Reconnector's Failover reports.
func failovers(r *Reconnector) <-chan Failover {
	ch := make(chan Failover, 8)
	r.OnFailover = func(f Failover) { ch <- f }
	return ch
}

// runReconnector runs r until the test ends and checks how Run returned.
func runReconnector(t *testing.T, r *Reconnector) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
		case <-time.After(waitLimit):
			t.Error("Run did not return")
		}
	})
}

// The Reconnector follows a Move to the first URL that works, and closes
// the old session only once the new one is up.
func TestReconnectorFollowsMove(t *testing.T) {
	var bConnected atomic.Bool
	oldClosedAfterNew := make(chan bool, 1)
	b := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, n uint64) {
		bConnected.Store(true)
		welcomeAs(t, conn, "b", n)
		drain(conn)
	})
	dead := httptest.NewServer(http.NotFoundHandler()) // not a WebSocket
	t.Cleanup(dead.Close)
	deadURL := "ws" + dead.URL[len("http"):] + "/"
	a := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, n uint64) {
		welcomeAs(t, conn, "a", n)
		if n > 1 {
			drain(conn)
			return
		}
		sendMove(t, conn, deadURL, b.url)
		err := drain(conn)
		var ce *websocket.CloseError
		oldClosedAfterNew <- errors.As(err, &ce) && ce.Code == websocket.CloseNormalClosure && bConnected.Load()
	})
	conns := make(chan *Client, 4)
	r := &Reconnector{Options: Options{URL: a.url, Handler: func(Message) {}}, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	r.OnConnect = func(c *Client) { conns <- c }
	fo := failovers(r)
	runReconnector(t, r)

	first := recv(t, conns)
	second := recv(t, conns)
	if first.Ref().Server != "a" || second.Ref().Server != "b" {
		t.Fatalf("connected to %s then %s, want a then b", first.Ref().Server, second.Ref().Server)
	}
	if !recv(t, oldClosedAfterNew) {
		t.Error("the old session was not closed normally after the new one was up")
	}
	f := recv(t, fo)
	if f.From != "a" || f.To != "b" || f.FromURL != a.url || f.ToURL != b.url || f.Reason != protocol.ReasonDraining || f.Err != nil || f.Duration <= 0 {
		t.Errorf("failover %+v", f)
	}
	if r.Current() != second {
		t.Error("Current is not the new client")
	}
	if a.n.Load() != 1 {
		t.Errorf("%d connections to the draining server, want 1", a.n.Load())
	}
}

// A Move that names no server that works sends the client to the
// directory's, and without one to the configured URLs.
func TestReconnectorMoveFallsBack(t *testing.T) {
	for _, withDir := range []bool{false, true} {
		t.Run(fmt.Sprintf("directory=%v", withDir), func(t *testing.T) {
			c := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, n uint64) {
				welcomeAs(t, conn, "c", n)
				drain(conn)
			})
			a := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, n uint64) {
				welcomeAs(t, conn, "a", n)
				if n == 1 {
					sendMove(t, conn, "ws://127.0.0.1:1/")
				}
				drain(conn)
			})
			conns := make(chan *Client, 4)
			r := &Reconnector{Options: Options{URL: a.url, Handler: func(Message) {}}, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
			if withDir {
				// The first read lists a alone; later ones a draining, and c.
				before := Directory{Group: "g", Servers: []DirectoryServer{{ID: "a", URL: a.url, Players: 1, Capacity: 10}}}
				after := Directory{Group: "g", Servers: []DirectoryServer{
					{ID: "a", URL: a.url, Players: 1, Capacity: 10, Draining: true},
					{ID: "c", URL: c.url, Players: 5, Capacity: 10},
				}}
				var reads atomic.Int32
				r.Directory = directoryServerFunc(t, func() Directory {
					if reads.Add(1) == 1 {
						return before
					}
					return after
				})
			} else {
				r.URLs = []string{c.url}
			}
			r.OnConnect = func(c *Client) { conns <- c }
			fo := failovers(r)
			runReconnector(t, r)
			recv(t, conns)
			if got := recv(t, conns); got.Ref().Server != "c" {
				t.Fatalf("moved to %s, want c", got.Ref().Server)
			}
			if f := recv(t, fo); f.To != "c" || f.Reason != protocol.ReasonDraining {
				t.Errorf("failover %+v", f)
			}
		})
	}
}

// directoryServer serves d at /servers and returns its URL.
func directoryServer(t *testing.T, d Directory) string {
	return directoryServerFunc(t, func() Directory { return d })
}

// directoryServerFunc serves what d returns at /servers.
func directoryServerFunc(t *testing.T, d func() Directory) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/servers" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(d())
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/servers"
}

func TestDirectoryURLs(t *testing.T) {
	d := Directory{Servers: []DirectoryServer{
		{ID: "unknown", URL: "ws://u/", Players: -1, Capacity: 10},
		{ID: "full", URL: "ws://f/", Players: 9, Capacity: 10},
		{ID: "draining", URL: "ws://d/", Players: 0, Capacity: 10, Draining: true},
		{ID: "nolimit", URL: "ws://n/", Players: 3},
		{ID: "light", URL: "ws://l/", Players: 1, Capacity: 10},
		{ID: "light2", URL: "ws://l2/", Players: 2, Capacity: 20},
	}}
	want := []string{"ws://l/", "ws://l2/", "ws://f/", "ws://n/", "ws://u/"}
	if got := d.URLs(); !slices.Equal(got, want) {
		t.Errorf("URLs() = %v, want %v", got, want)
	}
}

func TestFetchDirectory(t *testing.T) {
	want := Directory{Group: "g", Partial: true, Servers: []DirectoryServer{{ID: "x", URL: "ws://x/", Players: -1}}}
	u := directoryServer(t, want)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	got, err := FetchDirectory(ctx, nil, u)
	if err != nil || got.Group != "g" || !got.Partial || len(got.Servers) != 1 || got.Servers[0] != want.Servers[0] {
		t.Fatalf("FetchDirectory = %+v, %v", got, err)
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/json" {
			w.Write([]byte("{not json"))
			return
		}
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	t.Cleanup(bad.Close)
	for _, u := range []string{bad.URL + "/servers", bad.URL + "/json", "ws://x/servers", "http:///servers"} {
		if _, err := FetchDirectory(ctx, nil, u); !errors.Is(err, ErrDirectory) {
			t.Errorf("FetchDirectory(%s) = %v, want ErrDirectory", u, err)
		}
	}
}

// The Reconnector tries the directory's least loaded server first, the
// next when it fails, and the configured URLs when the directory fails.
func TestReconnectorDirectory(t *testing.T) {
	server := func(id string) *fakeServer {
		return newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, n uint64) {
			welcomeAs(t, conn, id, n)
			drain(conn)
		})
	}
	light, heavy, conf := server("light"), server("heavy"), server("conf")
	refusing := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
		sendClose(conn, protocol.ReasonDraining, "")
	})
	connectTo := func(t *testing.T, dir string) string {
		conns := make(chan *Client, 1)
		r := &Reconnector{Options: Options{URL: conf.url, Handler: func(Message) {}}, Directory: dir}
		r.OnConnect = func(c *Client) { conns <- c }
		runReconnector(t, r)
		return recv(t, conns).Ref().Server
	}
	t.Run("least loaded", func(t *testing.T) {
		dir := directoryServer(t, Directory{Servers: []DirectoryServer{
			{ID: "heavy", URL: heavy.url, Players: 8, Capacity: 10},
			{ID: "light", URL: light.url, Players: 2, Capacity: 10},
		}})
		if got := connectTo(t, dir); got != "light" {
			t.Errorf("connected to %s, want light", got)
		}
	})
	t.Run("next when the first refuses", func(t *testing.T) {
		dir := directoryServer(t, Directory{Servers: []DirectoryServer{
			{ID: "refusing", URL: refusing.url, Players: 0, Capacity: 10},
			{ID: "heavy", URL: heavy.url, Players: 8, Capacity: 10},
		}})
		if got := connectTo(t, dir); got != "heavy" {
			t.Errorf("connected to %s, want heavy", got)
		}
	})
	t.Run("configured URLs when the directory fails", func(t *testing.T) {
		broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "down", http.StatusInternalServerError)
		}))
		t.Cleanup(broken.Close)
		if got := connectTo(t, broken.URL+"/servers"); got != "conf" {
			t.Errorf("connected to %s, want conf", got)
		}
	})
}

func TestReconnectorSettings(t *testing.T) {
	for name, r := range map[string]*Reconnector{
		"no server":     {},
		"bad URL":       {URLs: []string{"http://x/"}},
		"bad directory": {Directory: "ws://x/servers"},
	} {
		if err := r.Run(context.Background()); err == nil {
			t.Errorf("%s: Run accepted the settings", name)
		}
	}
}

// A Move's servers are dialled before the directory is read again: the
// directory may be slow to answer, and a moving client holds a session.
func TestReconnectorMoveDialsBeforeTheDirectory(t *testing.T) {
	b := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, n uint64) {
		welcomeAs(t, conn, "b", n)
		drain(conn)
	})
	a := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, n uint64) {
		welcomeAs(t, conn, "a", n)
		if n == 1 {
			sendMove(t, conn, b.url)
		}
		drain(conn)
	})
	var reads atomic.Int32
	dir := directoryServerFunc(t, func() Directory {
		reads.Add(1)
		return Directory{Servers: []DirectoryServer{{ID: "a", URL: a.url, Capacity: 10}}}
	})
	conns := make(chan *Client, 4)
	r := &Reconnector{Directory: dir, Options: Options{Handler: func(Message) {}}}
	r.OnConnect = func(c *Client) { conns <- c }
	runReconnector(t, r)
	recv(t, conns)
	if got := recv(t, conns).Ref().Server; got != "b" {
		t.Fatalf("moved to %s, want b", got)
	}
	if n := reads.Load(); n != 1 {
		t.Errorf("the directory was read %d times, want once (for the first connection)", n)
	}
}
