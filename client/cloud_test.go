package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
)

// miniCloud is a one-connection cloud memory in a fake server: it stores
// rows, answers Post, Release, Get and Unsubscribe, and notifies the
// connection of changes to the keys it subscribed to. Extra rows can be
// injected as if another client posted them (inject), and the test can
// make it answer specific codes (fail) or send raw messages (raw).
type miniCloud struct {
	mu   sync.Mutex
	rows map[cloud.Key]map[protocol.ClientRef][]byte
	subs map[cloud.Key][]protocol.ClientRef // nil slice: all uploaders
	sub  map[cloud.Key]bool
	conn *websocket.Conn
	wmu  sync.Mutex
	fail map[protocol.Kind]cloud.Code
	// partial makes Get report these keys missing.
	partial map[cloud.Key]bool
	self    protocol.ClientRef
}

func newMiniCloud() *miniCloud {
	return &miniCloud{
		rows:    make(map[cloud.Key]map[protocol.ClientRef][]byte),
		subs:    make(map[cloud.Key][]protocol.ClientRef),
		sub:     make(map[cloud.Key]bool),
		fail:    make(map[protocol.Kind]cloud.Code),
		partial: make(map[cloud.Key]bool),
		self:    protocol.ClientRef{Server: "ext-1", ID: 9},
	}
}

func (m *miniCloud) send(kind protocol.Kind, payload []byte) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	writeWS(m.conn, kind, 0, payload)
}

func (m *miniCloud) script(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
	m.mu.Lock()
	m.conn = conn
	m.mu.Unlock()
	welcome(t, conn, m.self.ID, 4096)
	for {
		f, err := readUser(conn)
		if err != nil {
			return
		}
		m.handle(f)
	}
}

func (m *miniCloud) handle(f protocol.Frame) {
	m.mu.Lock()
	defer m.mu.Unlock()
	code := m.fail[f.Kind]
	switch f.Kind {
	case protocol.KindCloudPost:
		var p cloudwire.Post
		p.Decode(f.Payload)
		if code == 0 {
			m.setLocked(p.Key, m.self, append([]byte(nil), p.Data...))
		}
		m.send(protocol.KindCloudReply, (&cloudwire.Reply{Req: p.Req, Code: code, Message: "scripted"}).AppendTo(nil))
	case protocol.KindCloudRelease:
		var p cloudwire.Release
		p.Decode(f.Payload)
		for _, k := range p.Keys {
			m.deleteLocked(k, m.self)
		}
		m.send(protocol.KindCloudReply, (&cloudwire.Reply{Req: p.Req}).AppendTo(nil))
	case protocol.KindCloudGet:
		var g cloudwire.Get
		g.Decode(f.Payload)
		res := cloudwire.Result{Req: g.Req, Code: code}
		for _, k := range g.Query.Keys {
			if m.partial[k] {
				res.Partial = true
				res.Missing = append(res.Missing, k)
				continue
			}
			if g.Query.Subscribe {
				m.sub[k] = true
				m.subs[k] = g.Query.Uploaders
			}
			for _, r := range m.sortedLocked(k) {
				if len(g.Query.Uploaders) == 0 || slices.Contains(g.Query.Uploaders, r.Uploader) {
					res.Rows = append(res.Rows, r)
					res.Total++
				}
			}
		}
		m.send(protocol.KindCloudResult, res.AppendTo(nil))
	case protocol.KindCloudUnsubscribe:
		var u cloudwire.Unsubscribe
		u.Decode(f.Payload)
		for _, k := range u.Keys {
			delete(m.sub, k)
		}
		m.send(protocol.KindCloudReply, (&cloudwire.Reply{Req: u.Req}).AppendTo(nil))
	}
}

func (m *miniCloud) sortedLocked(k cloud.Key) []cloud.Row {
	var rows []cloud.Row
	for up, d := range m.rows[k] {
		rows = append(rows, cloud.Row{Key: k, Uploader: up, Via: up.Server, Data: d})
	}
	sort.Slice(rows, func(i, j int) bool { return protocol.CompareRefs(rows[i].Uploader, rows[j].Uploader) < 0 })
	return rows
}

func (m *miniCloud) wants(k cloud.Key, up protocol.ClientRef) bool {
	return m.sub[k] && (len(m.subs[k]) == 0 || slices.Contains(m.subs[k], up))
}

func (m *miniCloud) setLocked(k cloud.Key, up protocol.ClientRef, d []byte) {
	if m.rows[k] == nil {
		m.rows[k] = make(map[protocol.ClientRef][]byte)
	}
	_, existed := m.rows[k][up]
	m.rows[k][up] = d
	if m.wants(k, up) {
		n := cloudwire.Notice{Type: cloudwire.Updated, Created: !existed, Row: cloud.Row{Key: k, Uploader: up, Via: up.Server, Data: d}}
		m.send(protocol.KindCloudNotify, n.AppendTo(nil))
	}
}

func (m *miniCloud) deleteLocked(k cloud.Key, up protocol.ClientRef) {
	d, ok := m.rows[k][up]
	if !ok {
		return
	}
	delete(m.rows[k], up)
	if m.wants(k, up) {
		n := cloudwire.Notice{Type: cloudwire.Deleted, Row: cloud.Row{Key: k, Uploader: up, Via: up.Server, Data: d}}
		m.send(protocol.KindCloudNotify, n.AppendTo(nil))
	}
}

// inject posts (or, with nil data, deletes) a row of another uploader.
func (m *miniCloud) inject(k cloud.Key, up protocol.ClientRef, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if data == nil {
		m.deleteLocked(k, up)
	} else {
		m.setLocked(k, up, data)
	}
}

// resync sends a resync of k with its current rows.
func (m *miniCloud) resync(k cloud.Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.partial, k)
	r := cloudwire.Resync{Key: k, Rows: m.sortedLocked(k)}
	m.send(protocol.KindCloudResync, r.AppendTo(nil))
}

func cloudCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

func rowsString(rows []cloud.Row) string {
	var parts []string
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%s %s=%s", r.Key, r.Uploader, r.Data))
	}
	return strings.Join(parts, ", ")
}

func TestCloudOps(t *testing.T) {
	mc := newMiniCloud()
	f := newFakeServer(t, mc.script)
	var mu sync.Mutex
	var notes []cloud.Notification
	c := dial(t, Options{URL: f.url, OnCloud: func(n cloud.Notification) {
		mu.Lock()
		notes = append(notes, n)
		mu.Unlock()
	}})
	ctx := cloudCtx(t)
	k := cloud.Key{Primary: "app", Secondary: 1}
	other := ClientRef{Server: "ext-2", ID: 1}
	mc.inject(k, other, []byte("theirs"))
	res, err := c.Get(ctx, cloud.Query{Keys: []cloud.Key{k}, Subscribe: true})
	if err != nil || res.Total != 1 || rowsString(res.Rows) != "app/1 ext-2#1=theirs" {
		t.Fatalf("Get = %+v, %v", res, err)
	}
	if err := c.Post(ctx, k, []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if err := c.Release(ctx, k); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := slices.Clone(notes)
	mu.Unlock()
	if len(got) != 2 || got[0].Type != cloud.NotifyUpdated || !got[0].Created || string(got[0].Row.Data) != "mine" ||
		got[1].Type != cloud.NotifyDeleted || string(got[1].Row.Data) != "mine" || got[1].Row.Uploader != c.Ref() {
		t.Fatalf("notifications %+v", got)
	}
	if err := c.Unsubscribe(ctx, []cloud.Key{k}); err != nil {
		t.Fatal(err)
	}

	// Errors carry their code and match their sentinel.
	mc.mu.Lock()
	mc.fail[protocol.KindCloudPost] = cloud.CodeUploadLimit
	mc.mu.Unlock()
	err = c.Post(ctx, k, []byte("x"))
	var ce *cloud.Error
	if !errors.Is(err, cloud.ErrUploadLimit) || !errors.As(err, &ce) || ce.Message != "scripted" {
		t.Fatalf("Post = %v", err)
	}
	if errors.Is(err, cloud.ErrRejected) {
		t.Fatal("an upload-limit error matches cloud.ErrRejected")
	}
	// Checked before sending.
	if err := c.Post(ctx, cloud.Key{Primary: strings.Repeat("k", 300)}, nil); !errors.Is(err, cloud.ErrBadRequest) {
		t.Fatalf("long key: %v", err)
	}
	if _, err := c.Get(ctx, cloud.Query{}); !errors.Is(err, cloud.ErrBadRequest) {
		t.Fatalf("no keys: %v", err)
	}
	if err := c.Post(ctx, k, make([]byte, 5000)); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("over the server's message limit: %v", err)
	}
	// A cancelled context ends the wait.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Post(cctx, k, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestCloudNotificationsChannel(t *testing.T) {
	mc := newMiniCloud()
	f := newFakeServer(t, mc.script)
	c := dial(t, Options{URL: f.url, Handler: func(Message) {}})
	ch := c.Notifications()
	if c.Notifications() != ch {
		t.Fatal("Notifications made a second channel")
	}
	ctx := cloudCtx(t)
	k := cloud.Key{Primary: "ch", Secondary: 2}
	if _, err := c.Get(ctx, cloud.Query{Keys: []cloud.Key{k}, Subscribe: true}); err != nil {
		t.Fatal(err)
	}
	mc.inject(k, ClientRef{Server: "x", ID: 1}, []byte("a"))
	if n := recv(t, ch); n.Type != cloud.NotifyUpdated || string(n.Row.Data) != "a" || n.Key != k {
		t.Fatalf("notification %+v", n)
	}
	mc.resync(k)
	if n := recv(t, ch); n.Type != cloud.NotifyResync || len(n.Rows) != 1 {
		t.Fatalf("resync %+v", n)
	}
	c.Close()
	for range ch {
	}
	if _, err := c.Get(ctx, cloud.Query{Keys: []cloud.Key{k}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
}

func TestCloudPendingFailsWhenClientEnds(t *testing.T) {
	entered := make(chan struct{})
	f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
		welcome(t, conn, 1, 1024)
		readUser(conn) // the Post, never answered
		close(entered)
		sendClose(conn, protocol.ReasonKicked, "bye")
		drain(conn)
	})
	c := dial(t, Options{URL: f.url, Handler: func(Message) {}})
	err := c.Post(cloudCtx(t), cloud.Key{Primary: "p"}, nil)
	<-entered
	if !errors.Is(err, ErrClosed) || !errors.Is(err, ErrKicked) {
		t.Fatalf("Post = %v", err)
	}
}

func TestView(t *testing.T) {
	mc := newMiniCloud()
	f := newFakeServer(t, mc.script)
	c := dial(t, Options{URL: f.url, Handler: func(Message) {}})
	ctx := cloudCtx(t)
	k1, k2 := cloud.Key{Primary: "v", Secondary: 1}, cloud.Key{Primary: "v", Secondary: 2}
	a, b := ClientRef{Server: "a", ID: 1}, ClientRef{Server: "b", ID: 1}
	mc.inject(k1, b, []byte("b1"))
	mc.inject(k1, a, []byte("a1"))
	mc.inject(k2, a, []byte("a2"))
	mc.mu.Lock()
	mc.partial[k2] = true
	mc.mu.Unlock()

	all, err := c.View(ctx, []cloud.Key{k2, k1})
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsString(all.Rows()); got != "v/1 a#1=a1, v/1 b#1=b1" || all.Complete() {
		t.Fatalf("snapshot %s, complete %v", got, all.Complete())
	}
	// The missing key arrives in a resync.
	mc.resync(k2)
	waitView(t, all, "v/2 a#1=a2, v/1 a#1=a1, v/1 b#1=b1")
	if !all.Complete() {
		t.Fatal("incomplete after the resync")
	}
	// A second view with a filter shares the subscription.
	onlyB, err := c.View(ctx, []cloud.Key{k1}, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsString(onlyB.Rows()); got != "v/1 b#1=b1" {
		t.Fatalf("filtered view %s", got)
	}
	mc.inject(k1, b, []byte("b2"))
	mc.inject(k1, a, nil)
	mc.inject(k1, ClientRef{Server: "c", ID: 3}, []byte("c3"))
	waitView(t, all, "v/2 a#1=a2, v/1 b#1=b2, v/1 c#3=c3")
	waitView(t, onlyB, "v/1 b#1=b2")
	if r, ok := all.Row(k1, b); !ok || string(r.Data) != "b2" {
		t.Fatalf("Row = %+v %v", r, ok)
	}
	// Closing the unfiltered view narrows the subscription to b.
	if err := all.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mc.mu.Lock()
	subs, sub2 := slices.Clone(mc.subs[k1]), mc.sub[k2]
	mc.mu.Unlock()
	if !slices.Equal(subs, []ClientRef{b}) || sub2 {
		t.Fatalf("after Close: k1 filter %v, k2 subscribed %v", subs, sub2)
	}
	mc.inject(k1, b, []byte("b3"))
	waitView(t, onlyB, "v/1 b#1=b3")
	if err := onlyB.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func waitView(t *testing.T, v *View, want string) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		if got := rowsString(v.Rows()); got == want {
			return
		}
		select {
		case <-v.Changed():
		case <-v.c.Done():
			t.Fatalf("client ended: %v", v.Err())
		case <-deadline:
			t.Fatalf("view %s, want %s", rowsString(v.Rows()), want)
		}
	}
}

// TestNotificationDecodeAllocs: a subscriber decodes each notification
// with one allocation, the copy of its data: the key, uploader and
// addresses seen before are reused. The copy does not alias the read
// buffer.
func TestNotificationDecodeAllocs(t *testing.T) {
	var got cloud.Notification
	c := &Client{quit: make(chan struct{}), opts: Options{OnCloud: func(n cloud.Notification) { got = n }}}
	row := cloud.Row{
		Key:      cloud.Key{Primary: "zone/7", Secondary: 3},
		Uploader: ClientRef{Server: "edge-1", ID: 42},
		Addr:     "127.0.0.1:50000",
		Via:      "edge-1",
		Data:     []byte("position 1 2 3"),
	}
	payload := (&cloudwire.Notice{Type: cloudwire.Updated, Created: true, Row: row}).AppendTo(nil)
	f := protocol.Frame{Kind: protocol.KindCloudNotify, Payload: payload}
	if more, err := c.cloudFrame(f); !more || err != nil {
		t.Fatalf("cloudFrame: %v %v", more, err)
	}
	want := cloud.Notification{Type: cloud.NotifyUpdated, Key: row.Key, Row: row, Created: true}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	allocs := testing.AllocsPerRun(100, func() { c.cloudFrame(f) })
	if allocs > 1 && !raceEnabled {
		t.Errorf("%v allocations per notification, want 1 (its data)", allocs)
	}
	kept := got
	clear(payload) // the read buffer is reused for the next message
	if string(kept.Row.Data) != "position 1 2 3" || kept.Key.Primary != "zone/7" || kept.Row.Uploader.Server != "edge-1" {
		t.Fatalf("the notification changed with the read buffer: %+v", kept)
	}
}

// TestCloudCallsReusedConcurrently: answered requests' records are reused
// for later ones; with many requests in flight from several goroutines,
// each still gets its own answer, never one meant for another request.
func TestCloudCallsReusedConcurrently(t *testing.T) {
	mc := newMiniCloud()
	f := newFakeServer(t, mc.script)
	c := dial(t, Options{URL: f.url})
	ctx := cloudCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := cloud.Key{Primary: "reuse", Secondary: uint32(g)}
			for i := range 40 {
				// A Get given up on while its answer is on the way: the
				// answer must not reach a later request.
				short, cancel := context.WithTimeout(ctx, time.Duration(i%4)*20*time.Microsecond)
				c.Get(short, cloud.Query{Keys: []cloud.Key{{Primary: "reuse", Secondary: 99}}})
				cancel()
				data := fmt.Sprintf("g%d-%d", g, i)
				if err := c.Post(ctx, k, []byte(data)); err != nil {
					errs <- err
					return
				}
				res, err := c.Get(ctx, cloud.Query{Keys: []cloud.Key{k}})
				if err != nil {
					errs <- err
					return
				}
				if len(res.Rows) != 1 || res.Rows[0].Key != k || string(res.Rows[0].Data) != data {
					errs <- fmt.Errorf("goroutine %d, Get %d: rows %s, want %s=%s", g, i, rowsString(res.Rows), k, data)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
