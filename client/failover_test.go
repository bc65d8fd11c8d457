package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/protocol"

	_ "github.com/cloudrift/cloudrift/plugins/cloudmemory"
)

// failoverSystem has three client servers (one to stop) and two cloud
// memory replicas, over loopback.
const failoverSystem = `
system: client-failover
secret: client-failover-secret-of-enough-length
registry:
  type: embedded
groups:
  - name: client
    visibility: external
    connectsTo: [cloud]
    replicas: 3
  - name: cloud
    visibility: internal
    replicas: 2
    plugins:
      - name: cloudmemory
        settings:
          serverGrace: 1s
`

// patience bounds every wait of these tests; it is no performance
// assertion.
const patience = 15 * time.Second

// rowsOf formats a view's rows as "server#id=data", sorted.
func rowsOf(v *client.View) []string {
	var out []string
	for _, r := range v.Rows() {
		out = append(out, fmt.Sprintf("%s#%d=%s", r.Uploader.Server, r.Uploader.ID, r.Data))
	}
	slices.Sort(out)
	return out
}

func rowOf(ref client.ClientRef, data string) string {
	return fmt.Sprintf("%s#%d=%s", ref.Server, ref.ID, data)
}

// converge waits until v holds exactly want (sorted) and is complete.
func converge(t *testing.T, what string, v *client.View, want ...string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.After(patience)
	for !slices.Equal(rowsOf(v), want) || !v.Complete() {
		select {
		case <-v.Changed():
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s: rows %v (complete %v), want %v", what, rowsOf(v), v.Complete(), want)
		}
	}
}

func recvT[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(patience):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// A Reconnector whose server drains (it follows the Move) or shuts down
// (it reconnects) ends up on another server of the group: it reports the
// failover, its View is subscribed again and converges, and with Repost
// the row it posted (its latest data) is there once, under its new ref,
// while the row it released stays gone.
func TestReconnectorFailoverRealSystem(t *testing.T) {
	t.Run("drain", func(t *testing.T) {
		drained := make(chan error, 1)
		failover(t, func(victim *clustertest.Server) {
			go func() { drained <- victim.Cluster().Drain(context.Background()) }()
		}, func(f client.Failover, seen []string) {
			if f.Reason != protocol.ReasonDraining || f.Err != nil {
				t.Errorf("failover after a drain: reason %s, err %v; want a Move", f.Reason, f.Err)
			}
			// Make before break: the row was posted again before the old
			// session closed, so a watcher never saw the client without it.
			if !slices.Equal(seen, []string{"new row", "old row gone"}) {
				t.Errorf("the watcher saw %v, want the new row before the old one went", seen)
			}
			// The drain ends once its only player has moved.
			if err := recvT(t, drained, "the drain to end"); err != nil {
				t.Errorf("Drain: %v", err)
			}
		})
	})
	t.Run("shutdown", func(t *testing.T) {
		failover(t, (*clustertest.Server).Shutdown, func(f client.Failover, _ []string) {
			if f.Reason != protocol.ReasonShutdown || !errors.Is(f.Err, client.ErrShutdown) {
				t.Errorf("failover after a shutdown: reason %s, err %v", f.Reason, f.Err)
			}
		})
	})
}

// failover runs the failover test: stop takes the victim away, check
// looks at the failover report and at what the watcher saw of the
// client's row ("new row", "old row gone"), in order.
func failover(t *testing.T, stop func(*clustertest.Server), check func(f client.Failover, seen []string)) {
	sys := clustertest.Start(t, failoverSystem)
	sys.WaitLinked("client")
	victim, other := sys.Server("client-3"), sys.Server("client-2")
	k := cloud.Key{Primary: "failover"}
	gone := cloud.Key{Primary: "released"}

	watcher := sys.Server("client-1").Dial()
	ctx, cancel := context.WithTimeout(context.Background(), 2*patience)
	defer cancel()
	if err := watcher.Post(ctx, k, []byte("watcher")); err != nil {
		t.Fatal(err)
	}
	watched, err := watcher.View(ctx, []cloud.Key{k})
	if err != nil {
		t.Fatal(err)
	}

	conns := make(chan *client.Client, 4)
	fos := make(chan client.Failover, 4)
	r := &client.Reconnector{
		Options:    client.Options{URL: victim.URL(), Handler: func(client.Message) {}},
		URLs:       []string{other.URL()},
		Repost:     true,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond,
		OnConnect:  func(c *client.Client) { conns <- c },
		OnFailover: func(f client.Failover) { fos <- f },
	}
	runCtx, endRun := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(runCtx) }()
	defer func() {
		endRun()
		recvT(t, runErr, "Run to return")
	}()

	c1 := recvT(t, conns, "the first connection")
	if c1.Ref().Server != victim.ID() {
		t.Fatalf("first connection to %s, want %s", c1.Ref().Server, victim.ID())
	}
	v, err := r.View(ctx, []cloud.Key{k})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close(context.Background())
	for _, data := range []string{"first", "latest"} {
		if err := c1.Post(ctx, k, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c1.Post(ctx, gone, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := c1.Release(ctx, gone); err != nil {
		t.Fatal(err)
	}
	converge(t, "the reconnector's view", v, rowOf(watcher.Ref(), "watcher"), rowOf(c1.Ref(), "latest"))

	stop(victim)

	c2 := recvT(t, conns, "the connection after the failover")
	if c2.Ref().Server != other.ID() {
		t.Fatalf("moved to %s, want %s", c2.Ref().Server, other.ID())
	}
	f := recvT(t, fos, "the failover report")
	if f.From != victim.ID() || f.To != other.ID() || f.FromURL != victim.URL() || f.ToURL != other.URL() || f.Duration <= 0 {
		t.Errorf("failover %+v", f)
	}
	t.Logf("failover %+v", f)
	want := []string{rowOf(watcher.Ref(), "watcher"), rowOf(c2.Ref(), "latest")}
	converge(t, "the reconnector's view after the failover", v, want...)
	converge(t, "the watcher's view", watched, want...)
	// The SDK updates a View before it hands the notification to the
	// channel: the view may have converged a moment before the last
	// notification is there. Read until the old row's deletion arrives
	// (or patience runs out), then what else is already waiting.
	var seen []string
	note := func(n cloud.Notification) {
		switch {
		case n.Key != k:
		case n.Type == cloud.NotifyUpdated && n.Row.Uploader == c2.Ref():
			seen = append(seen, "new row")
		case n.Type == cloud.NotifyDeleted && n.Row.Uploader == c1.Ref():
			seen = append(seen, "old row gone")
		}
	}
	waitGone := time.After(patience)
	for !slices.Contains(seen, "old row gone") {
		select {
		case n := <-watcher.Notifications():
			note(n)
			continue
		case <-waitGone:
		}
		break
	}
	for len(watcher.Notifications()) > 0 {
		note(<-watcher.Notifications())
	}
	check(f, seen)
	if v.Err() != nil {
		t.Errorf("the view's Err = %v while Run runs", v.Err())
	}

	// A round trip on the new connection, and the released row is not
	// back.
	res, err := c2.Get(ctx, cloud.Query{Keys: []cloud.Key{k, gone}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, row := range res.Rows {
		got = append(got, fmt.Sprintf("%s:%s", row.Key.Primary, rowOf(row.Uploader, string(row.Data))))
	}
	wantGet := []string{"failover:" + want[0], "failover:" + want[1]}
	slices.Sort(got)
	slices.Sort(wantGet)
	if !slices.Equal(got, wantGet) {
		t.Errorf("Get on the new connection = %v, want %v", got, wantGet)
	}
}

// dirURL is the directory on srv's client port.
func dirURL(srv *clustertest.Server) string {
	return "http://" + srv.Addr() + "/servers"
}

// A Reconnector given only a group's directory connects to its least
// loaded server.
func TestReconnectorDirectoryRealSystem(t *testing.T) {
	sys := clustertest.Start(t, failoverSystem)
	sys.WaitLinked("client")
	c1, c2, c3 := sys.Server("client-1"), sys.Server("client-2"), sys.Server("client-3")
	c1.Dial()
	c1.Dial()
	c3.Dial()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var order []string
	for !slices.Equal(order, []string{c2.URL(), c3.URL(), c1.URL()}) {
		d, err := client.FetchDirectory(ctx, nil, dirURL(c1))
		if err != nil {
			t.Fatalf("directory: %v (last order %v)", err, order)
		}
		order = d.URLs()
		time.Sleep(10 * time.Millisecond)
	}
	conns := make(chan *client.Client, 1)
	r := &client.Reconnector{Directory: dirURL(c1), OnConnect: func(c *client.Client) { conns <- c }}
	r.Options.Handler = func(client.Message) {}
	runCtx, endRun := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(runCtx) }()
	defer func() {
		endRun()
		recvT(t, runErr, "Run to return")
	}()
	if got := recvT(t, conns, "a connection").Ref().Server; got != c2.ID() {
		t.Errorf("connected to %s, want the least loaded, %s", got, c2.ID())
	}
}
