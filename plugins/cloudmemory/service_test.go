package cloudmemory

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/rendezvous"
)

// cluster3 starts three cloud replicas, a world server and a client
// server, each non-cloud one with a probe, and waits for every link.
func cluster3(t *testing.T) (e *clustertest.System, world, cs *probe) {
	e = newSystem(t)
	for i := 1; i <= 3; i++ {
		e.StartServer("cloud", fmt.Sprintf("cloud-%d", i))
	}
	world, cs = &probe{}, &probe{}
	e.StartServer("world", "world-1", world)
	e.StartServer("client", "client-1", cs)
	testutil.WaitFor(t, "world linked to 3 replicas", world.linked(3))
	testutil.WaitFor(t, "client server linked to 3 replicas", cs.linked(3))
	return e, world, cs
}

func TestServerPostSubscribeRelease(t *testing.T) {
	_, world, cs := cluster3(t)
	ctx := testutil.Context(t)
	k1 := key{Primary: "app", Secondary: 1}
	res, err := cs.cm.Get(ctx, cloud.Query{Keys: []key{k1}, Subscribe: true})
	if err != nil || len(res.Rows) != 0 || res.Total != 0 || res.Partial {
		t.Fatalf("Get = %+v, %v", res, err)
	}
	if err := world.cm.Post(ctx, k1, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := world.cm.Post(ctx, k1, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if err := world.cm.Release(ctx, k1); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "four notifications", func() bool { return len(cs.notifications()) == 4 })
	ns := cs.notifications()
	// First the snapshot (empty), then the changes.
	if n := ns[0]; n.Type != cloud.NotifyResync || n.Key != k1 || len(n.Rows) != 0 || n.Truncated {
		t.Fatalf("notification 0: %+v, want the snapshot as an empty Resync", n)
	}
	ns = ns[1:]
	want := []struct {
		t       cloud.NotificationType
		created bool
		data    string
	}{{cloud.NotifyUpdated, true, "one"}, {cloud.NotifyUpdated, false, "two"}, {cloud.NotifyDeleted, false, "two"}}
	for i, n := range ns {
		if n.Type != want[i].t || n.Created != want[i].created || string(n.Row.Data) != want[i].data {
			t.Fatalf("notification %d: %+v", i, n)
		}
		if n.Key != k1 || n.Row.Uploader != (ref{Server: "world-1"}) || n.Row.Via != "world-1" {
			t.Fatalf("notification %d names %s %s via %s", i, n.Key, n.Row.Uploader, n.Row.Via)
		}
	}
	res, err = world.cm.Get(ctx, cloud.Query{Keys: []key{k1}})
	if err != nil || len(res.Rows) != 0 {
		t.Fatalf("Get after release = %+v, %v", res, err)
	}
	if world.cm.Ref() != (ref{Server: "world-1"}) {
		t.Fatalf("Ref = %v", world.cm.Ref())
	}
}

func TestServerLimitsAndErrors(t *testing.T) {
	_, world, cs := cluster3(t)
	ctx := testutil.Context(t)
	k := key{Primary: "lim", Secondary: 1}
	if err := world.cm.Post(ctx, k, make([]byte, 401)); !errors.Is(err, cloud.ErrRowTooLarge) {
		t.Fatalf("large row: %v", err)
	}
	var ce *cloud.Error
	if err := world.cm.Post(ctx, key{Primary: string(make([]byte, 300))}, nil); !errors.As(err, &ce) || ce.Code != cloud.CodeBadRequest {
		t.Fatalf("long key: %v", err)
	}
	many := make([]key, 9)
	for i := range many {
		many[i] = key{Primary: "k", Secondary: uint32(i)}
	}
	if _, err := cs.cm.Get(ctx, cloud.Query{Keys: many}); !errors.Is(err, cloud.ErrTooManyKeys) {
		t.Fatalf("many keys: %v", err)
	}
	if _, err := cs.cm.Get(ctx, cloud.Query{}); !errors.Is(err, cloud.ErrBadRequest) {
		t.Fatalf("no keys: %v", err)
	}
	if err := cs.cm.Unsubscribe(ctx, []key{k}); !errors.Is(err, cloud.ErrNotSubscribed) {
		t.Fatalf("unsubscribe: %v", err)
	}
	if _, err := cs.cm.Get(ctx, cloud.Query{Keys: []key{k}, Subscribe: true}); err != nil {
		t.Fatal(err)
	}
	if err := cs.cm.Unsubscribe(ctx, []key{k}, ref{Server: "world-1"}); !errors.Is(err, cloud.ErrSubscribedToAll) {
		t.Fatalf("unsubscribe uploader from all: %v", err)
	}
	if err := cs.cm.Unsubscribe(ctx, []key{k}); err != nil {
		t.Fatal(err)
	}
	// Servers' own rows are not bound by the per-client upload limit.
	for i := range 5 {
		if err := world.cm.Post(ctx, key{Primary: "big", Secondary: uint32(i)}, make([]byte, 400)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestServerGetAcrossReplicas(t *testing.T) {
	_, world, cs := cluster3(t)
	ctx := testutil.Context(t)
	keys := make([]key, 8)
	owners := make(map[string]bool)
	r := rendezvous.NewRing([]string{"cloud-1", "cloud-2", "cloud-3"})
	for i := range keys {
		keys[i] = key{Primary: fmt.Sprintf("spread-%d", i), Secondary: uint32(i)}
		owners[ownerOf(r, keys[i])] = true
	}
	if len(owners) < 2 {
		t.Fatalf("keys all on one replica: %v", owners)
	}
	for i, k := range keys {
		if i%3 != 2 {
			if err := world.cm.Post(ctx, k, fmt.Appendf(nil, "w%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := cs.cm.Post(ctx, k, fmt.Appendf(nil, "c%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// The expected order: query key order (reversed here), then uploader
	// (client-1 before world-1).
	q := make([]key, len(keys))
	var all []string
	for i := range keys {
		j := len(keys) - 1 - i
		q[i] = keys[j]
		all = append(all, fmt.Sprintf("%s client-1#0=c%d", keys[j], j))
		if j%3 != 2 {
			all = append(all, fmt.Sprintf("%s world-1#0=w%d", keys[j], j))
		}
	}
	for _, w := range []struct{ off, lim uint32 }{{0, 0}, {0, 3}, {2, 5}, {5, 0}, {13, 10}, {100, 1}} {
		res, err := cs.cm.Get(ctx, cloud.Query{Keys: q, Offset: w.off, Limit: w.lim})
		if err != nil {
			t.Fatal(err)
		}
		end := len(all)
		if w.lim > 0 {
			end = min(end, int(w.off+w.lim))
		}
		want := ""
		if int(w.off) < len(all) {
			want = joinRows(all[w.off:end])
		}
		if got := describeRows(res.Rows); got != want || res.Total != len(all) || res.Truncated || res.Partial {
			t.Fatalf("offset %d limit %d: total %d truncated %v partial %v\n got %s\nwant %s",
				w.off, w.lim, res.Total, res.Truncated, res.Partial, got, want)
		}
	}
	// Uploader filter.
	res, err := cs.cm.Get(ctx, cloud.Query{Keys: q[:2], Uploaders: []ref{{Server: "world-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describeRows(res.Rows), fmt.Sprintf("%s world-1#0=w7, %s world-1#0=w6", keys[7], keys[6]); got != want || res.Total != 2 {
		t.Fatalf("filtered: %s (total %d), want %s", got, res.Total, want)
	}
}

func joinRows(rows []string) string {
	s := ""
	for i, r := range rows {
		if i > 0 {
			s += ", "
		}
		s += r
	}
	return s
}

func TestServerGoneDeletesItsRows(t *testing.T) {
	e, world, cs := cluster3(t)
	ctx := testutil.Context(t)
	keys := []key{{Primary: "gone", Secondary: 1}, {Primary: "gone", Secondary: 2}, {Primary: "gone", Secondary: 3}}
	if _, err := cs.cm.Get(ctx, cloud.Query{Keys: keys, Subscribe: true}); err != nil {
		t.Fatal(err)
	}
	w2 := &probe{}
	s2 := e.StartServer("world", "world-2", w2)
	testutil.WaitFor(t, "world-2 linked", w2.linked(3))
	for _, k := range keys {
		if err := w2.cm.Post(ctx, k, []byte("w2")); err != nil {
			t.Fatal(err)
		}
		if err := world.cm.Post(ctx, k, []byte("w1")); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, "6 updates", func() bool { return len(cs.changes()) == 6 })
	s2.Kill()
	testutil.WaitFor(t, "3 deletions", func() bool { return len(cs.changes()) == 9 })
	for _, n := range cs.changes()[6:] {
		if n.Type != cloud.NotifyDeleted || n.Row.Uploader.Server != "world-2" || string(n.Row.Data) != "w2" {
			t.Fatalf("notification %+v", n)
		}
	}
	res, err := cs.cm.Get(ctx, cloud.Query{Keys: keys})
	if err != nil || res.Total != 3 {
		t.Fatalf("Get = %+v, %v", res, err)
	}
	for _, r := range res.Rows {
		if r.Uploader.Server != "world-1" {
			t.Fatalf("row of %s survived", r.Uploader)
		}
	}
}

func TestServerRowsSurviveReplicaKill(t *testing.T) {
	e := newSystem(t)
	replicas := make(map[string]*clustertest.Server)
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("cloud-%d", i)
		replicas[id] = e.StartServer("cloud", id)
	}
	world, cs := &probe{}, &probe{}
	e.StartServer("world", "world-1", world)
	e.StartServer("client", "client-1", cs)
	testutil.WaitFor(t, "world linked", world.linked(3))
	testutil.WaitFor(t, "client server linked", cs.linked(3))
	ctx := testutil.Context(t)
	keys := make([]key, 8)
	for i := range keys {
		keys[i] = key{Primary: "kill", Secondary: uint32(i)}
	}
	got := view{}
	res, err := cs.cm.Get(ctx, cloud.Query{Keys: keys, Subscribe: true})
	if err != nil {
		t.Fatal(err)
	}
	got.load(res.Rows)
	// Pick the replica that owns the most keys.
	victim := busiestReplica(keys)
	done := make(chan error, 1)
	go func() {
		var err error
		for round := 0; round < 30 && err == nil; round++ {
			for i, k := range keys {
				if err = world.cm.Post(ctx, k, fmt.Appendf(nil, "w-%d-%d", i, round)); err != nil {
					break
				}
			}
		}
		done <- err
	}()
	for i, k := range keys {
		if err := cs.cm.Post(ctx, k, fmt.Appendf(nil, "c-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	replicas[victim].Kill()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "world settled", world.settled)
	testutil.WaitFor(t, "client server settled", cs.settled)
	res, err = cs.cm.Get(ctx, cloud.Query{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i, k := range keys {
		want = append(want, fmt.Sprintf("%s client-1#0=c-%d", k, i), fmt.Sprintf("%s world-1#0=w-%d-29", k, i))
	}
	if g, w := describeRows(res.Rows), joinRows(want); g != w || res.Partial {
		t.Fatalf("after the kill (partial %v):\n got %s\nwant %s", res.Partial, g, w)
	}
	// The subscriber's state, from its snapshot and notifications, is the
	// same.
	fresh := view{}
	fresh.load(res.Rows)
	testutil.WaitFor(t, "the subscriber's view matches", func() bool {
		v := got.clone()
		for _, n := range cs.notifications() {
			v.apply(n)
		}
		return v.String() == fresh.String()
	})
}

func TestPostWaitsForFirstReplica(t *testing.T) {
	// A server that starts before any cloud replica (every system starts
	// this way) does not fail its first Posts: they wait for the first
	// replica, within the operation timeout. Once every replica that
	// linked is gone, a Post fails at once with Unavailable.
	e := newSystem(t)
	world := &probe{}
	e.StartServer("world", "world-1", world)
	ctx := testutil.Context(t)
	k := key{Primary: "early", Secondary: 1}
	posted := make(chan error, 1)
	go func() { posted <- world.cm.Post(ctx, k, []byte("first")) }()
	select {
	case err := <-posted:
		t.Fatalf("Post returned before any replica linked: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	replica := e.StartServer("cloud", "cloud-1")
	if err := <-posted; err != nil {
		t.Fatalf("Post once a replica linked: %v", err)
	}
	res, err := world.cm.Get(ctx, cloud.Query{Keys: []key{k}})
	if err != nil || len(res.Rows) != 1 || string(res.Rows[0].Data) != "first" {
		t.Fatalf("Get after the early Post: %+v, %v", res, err)
	}

	replica.Kill()
	testutil.WaitFor(t, "world unlinked from the replica", world.linked(0))
	// Had it waited, it would end with cloud.ErrTimeout.
	err = world.cm.Post(ctx, key{Primary: "late"}, []byte("x"))
	if !errors.Is(err, cloud.ErrUnavailable) {
		t.Fatalf("Post with every replica gone: %v, want cloud.ErrUnavailable", err)
	}
}

func TestPluginViewFromNotificationsAlone(t *testing.T) {
	// A plugin's subscribing Get returns on its goroutine while
	// notifications reach its handler on another, possibly first. The
	// snapshot also arrives in the notification stream, as a Resync before
	// what follows it, so a view built from notifications alone matches a
	// fresh Get, while two servers keep posting during the Get.
	e, world, cs := cluster3(t)
	w2 := &probe{}
	e.StartServer("world", "world-2", w2)
	testutil.WaitFor(t, "world-2 linked", w2.linked(3))
	ctx := testutil.Context(t)
	keys := spreadKeys(t, "pview", 6)
	for _, k := range keys {
		if err := world.cm.Post(ctx, k, []byte("before")); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	errs := make(chan error, 2)
	for _, p := range []*probe{world, w2} {
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				// The last two keys keep their "before" rows: only the
				// snapshot tells the view about them.
				if err := p.cm.Post(ctx, keys[i%(len(keys)-2)], []byte(fmt.Sprint(i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // posts are flowing
	if _, err := cs.cm.Get(ctx, cloud.Query{Keys: keys, Subscribe: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // and keep flowing after the snapshot
	close(stop)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	res, err := cs.cm.Get(ctx, cloud.Query{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	want := view{}
	want.load(res.Rows)
	testutil.WaitFor(t, "the view to match a fresh Get", func() bool {
		got := view{}
		for _, n := range cs.notifications() {
			got.apply(n)
		}
		return got.String() == want.String()
	})
	if n := cs.notifications(); n[0].Type != cloud.NotifyResync {
		t.Fatalf("first notification %+v, want the snapshot", n[0])
	}
}
