package cloudmemory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
	"github.com/cloudrift/cloudrift/rendezvous"
)

// The acceptance tests of the cloud memory: three cloud replicas, two
// client servers and one world server, in process on an embedded
// registry, over real sockets on loopback; game clients use the client
// SDK.

// system is a running test system.
type system struct {
	*clustertest.System
	cloudF map[string]*probe // the cloud replicas' query filters
	world  *probe
	cs     [2]*probe // client servers' probes (query filters)
	csrv   [2]*clustertest.Server
}

// testConfig is testSettings as a Config, for replicas started with extra
// plugins.
var testConfig = Config{
	MaxUploadBytesPerClient: 1000, MaxRowBytes: 400, MaxKeysPerQuery: 8, MaxBytesPerDownload: 2000,
	MaxSubscriptionsPerClient: 4, ServerGrace: config.Duration(300 * time.Millisecond),
	GetTimeout: config.Duration(time.Second), OpTimeout: config.Duration(3 * time.Second),
}

func startSystem(t *testing.T) *system {
	s := &system{System: newSystem(t), cloudF: make(map[string]*probe)}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("cloud-%d", i)
		f := &filterOnly{}
		s.cloudF[id] = &f.probe
		s.StartServer("cloud", id, &Service{Config: testConfig}, f)
	}
	s.world = &probe{}
	s.StartServer("world", "world-1", s.world)
	for i := range s.cs {
		s.cs[i] = &probe{}
		s.csrv[i] = s.StartServer("client", fmt.Sprintf("client-%d", i+1), s.cs[i])
	}
	for _, p := range []*probe{s.world, s.cs[0], s.cs[1]} {
		testutil.WaitFor(t, "links to 3 replicas", p.linked(3))
	}
	return s
}

// filterOnly is a probe without a cloud session (cloud replicas have no
// cloud-memory client): only its query filter is used.
type filterOnly struct{ probe }

func (f *filterOnly) Start(context.Context, plugins.Host) error { return nil }

// dial connects a game client to client server i (0 or 1).
func (s *system) dial(i int, opts client.Options) *client.Client {
	if opts.Handler == nil {
		opts.Handler = func(client.Message) {}
	}
	return s.csrv[i].DialWith(opts)
}

// recorder collects a client's notifications.
type recorder struct {
	mu    sync.Mutex
	notes []cloud.Notification
}

func (r *recorder) on(n cloud.Notification) {
	r.mu.Lock()
	r.notes = append(r.notes, n)
	r.mu.Unlock()
}

func (r *recorder) all() []cloud.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.notes)
}

func (r *recorder) count(n int) func() bool {
	return func() bool { return len(r.all()) >= n }
}

func TestAcceptSubscriberSeesPostFromOtherServer(t *testing.T) {
	s := startSystem(t)
	ctx := testutil.Context(t)
	var rec recorder
	sub := s.dial(0, client.Options{OnCloud: rec.on})
	up := s.dial(1, client.Options{})
	k := key{Primary: "room", Secondary: 7}
	if _, err := sub.Get(ctx, cloud.Query{Keys: []key{k}, Subscribe: true}); err != nil {
		t.Fatal(err)
	}
	if err := up.Post(ctx, k, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "Updated", rec.count(1))
	n := rec.all()[0]
	if n.Type != cloud.NotifyUpdated || !n.Created || n.Key != k || string(n.Row.Data) != "hello" {
		t.Fatalf("notification %+v", n)
	}
	if n.Row.Uploader != up.Ref() || n.Row.Via != "client-2" || !strings.HasPrefix(n.Row.Addr, "127.0.0.1:") {
		t.Fatalf("row names uploader %s via %s from %q; want %s via client-2 from loopback", n.Row.Uploader, n.Row.Via, n.Row.Addr, up.Ref())
	}
	up.Close()
	testutil.WaitFor(t, "Deleted", rec.count(2))
	d := rec.all()[1]
	if d.Type != cloud.NotifyDeleted || d.Row.Uploader != up.Ref() || string(d.Row.Data) != "hello" {
		t.Fatalf("deletion %+v", d)
	}
	res, err := sub.Get(ctx, cloud.Query{Keys: []key{k}})
	if err != nil || len(res.Rows) != 0 || res.Total != 0 {
		t.Fatalf("Get after the uploader left = %+v, %v", res, err)
	}
}

func TestAcceptSameKeyTwice(t *testing.T) {
	s := startSystem(t)
	ctx := testutil.Context(t)
	var rec recorder
	sub := s.dial(1, client.Options{OnCloud: rec.on})
	up := s.dial(0, client.Options{})
	k := key{Primary: "twice", Secondary: 1}
	if _, err := sub.Get(ctx, cloud.Query{Keys: []key{k}, Subscribe: true}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"first", "second"} {
		if err := up.Post(ctx, k, []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, "two notifications", rec.count(2))
	ns := rec.all()
	if len(ns) != 2 || !ns[0].Created || ns[1].Created || string(ns[0].Row.Data) != "first" || string(ns[1].Row.Data) != "second" {
		t.Fatalf("notifications %+v", ns)
	}
	res, err := sub.Get(ctx, cloud.Query{Keys: []key{k}})
	if err != nil || res.Total != 1 || describeRows(res.Rows) != fmt.Sprintf("twice/1 %s=second", up.Ref()) {
		t.Fatalf("Get = %+v, %v", res, err)
	}
	time.Sleep(50 * time.Millisecond) // no third notification follows
	if n := len(rec.all()); n != 2 {
		t.Fatalf("%d notifications", n)
	}
}

// spreadKeys returns n keys under prefix (or, when those all fall on one
// replica, under prefix with a suffix) owned by at least two of the
// replicas, so that the tests do not depend on where the hash puts a
// given key.
func spreadKeys(t *testing.T, prefix string, n int) []key {
	r := rendezvous.NewRing([]string{"cloud-1", "cloud-2", "cloud-3"})
	for try := range 100 {
		p := prefix
		if try > 0 {
			p = fmt.Sprintf("%s-%d", prefix, try)
		}
		keys := make([]key, n)
		owners := map[string]bool{}
		for i := range keys {
			keys[i] = key{Primary: p, Secondary: uint32(i)}
			owners[ownerOf(r, keys[i])] = true
		}
		if len(owners) >= 2 {
			return keys
		}
	}
	t.Fatalf("no %d keys under %q spread over two replicas", n, prefix)
	return nil
}

func TestAcceptGetAcrossReplicas(t *testing.T) {
	s := startSystem(t)
	ctx := testutil.Context(t)
	keys := spreadKeys(t, "order", 6)
	a, b := s.dial(0, client.Options{}), s.dial(1, client.Options{})
	// Order the two uploaders the way results do.
	first, second := a, b
	if protocol.CompareRefs(b.Ref(), a.Ref()) < 0 {
		first, second = b, a
	}
	for i, k := range keys {
		if err := second.Post(ctx, k, fmt.Appendf(nil, "s%d", i)); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := first.Post(ctx, k, fmt.Appendf(nil, "f%d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	q := []key{keys[3], keys[0], keys[5], keys[1], keys[4], keys[2]}
	var all []string
	for _, k := range q {
		i := int(k.Secondary)
		if i%2 == 0 {
			all = append(all, fmt.Sprintf("%s %s=f%d", k, first.Ref(), i))
		}
		all = append(all, fmt.Sprintf("%s %s=s%d", k, second.Ref(), i))
	}
	for _, w := range []struct{ off, lim uint32 }{{0, 0}, {0, 4}, {3, 3}, {4, 0}, {8, 5}, {9, 1}} {
		res, err := a.Get(ctx, cloud.Query{Keys: q, Offset: w.off, Limit: w.lim})
		if err != nil {
			t.Fatal(err)
		}
		end := len(all)
		if w.lim > 0 {
			end = min(end, int(w.off+w.lim))
		}
		want := joinRows(all[min(int(w.off), len(all)):end])
		if got := describeRows(res.Rows); got != want || res.Total != len(all) || res.Partial || res.Truncated {
			t.Fatalf("offset %d limit %d: total %d\n got %s\nwant %s", w.off, w.lim, res.Total, got, want)
		}
	}
}

func TestAcceptUploaderFilter(t *testing.T) {
	s := startSystem(t)
	ctx := testutil.Context(t)
	k := key{Primary: "directory", Secondary: 1}
	var rec recorder
	sub := s.dial(0, client.Options{OnCloud: rec.on})
	ups := []*client.Client{s.dial(0, client.Options{}), s.dial(1, client.Options{}), s.dial(1, client.Options{})}
	for i, u := range ups {
		if err := u.Post(ctx, k, fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// The world server lists itself too.
	if err := s.world.cm.Post(ctx, k, []byte("world")); err != nil {
		t.Fatal(err)
	}
	named := []client.ClientRef{ups[2].Ref(), {Server: "world-1"}}
	res, err := sub.Get(ctx, cloud.Query{Keys: []key{k}, Uploaders: named, Subscribe: true})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("directory/1 %s=v2, directory/1 world-1#0=world", ups[2].Ref())
	if got := describeRows(res.Rows); got != want || res.Total != 2 {
		t.Fatalf("filtered Get %s (total %d), want %s", got, res.Total, want)
	}
	for i, u := range ups {
		if err := u.Post(ctx, k, fmt.Appendf(nil, "again%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.world.cm.Release(ctx, k); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "two notifications", rec.count(2))
	time.Sleep(50 * time.Millisecond)
	ns := rec.all()
	if len(ns) != 2 || ns[0].Row.Uploader != ups[2].Ref() || ns[1].Type != cloud.NotifyDeleted || ns[1].Row.Uploader.Server != "world-1" {
		t.Fatalf("notifications %+v", ns)
	}
	// Removing a named uploader narrows the subscription; removing one
	// from an all-uploader subscription is an error.
	if err := sub.Unsubscribe(ctx, []key{k}, ups[2].Ref()); err != nil {
		t.Fatal(err)
	}
	if err := ups[2].Post(ctx, k, []byte("unseen")); err != nil {
		t.Fatal(err)
	}
	if err := sub.Unsubscribe(ctx, []key{k}, ups[0].Ref()); !errors.Is(err, cloud.ErrNotSubscribed) {
		t.Fatalf("unsubscribing an uploader not subscribed: %v", err)
	}
	if _, err := sub.Get(ctx, cloud.Query{Keys: []key{k}, Subscribe: true}); err != nil {
		t.Fatal(err)
	}
	if err := sub.Unsubscribe(ctx, []key{k}, ups[0].Ref()); !errors.Is(err, cloud.ErrSubscribedToAll) {
		t.Fatalf("unsubscribing an uploader from all: %v", err)
	}
	if n := len(rec.all()); n != 2 {
		t.Fatalf("%d notifications after narrowing", n)
	}
}

func TestAcceptRelease(t *testing.T) {
	s := startSystem(t)
	ctx := testutil.Context(t)
	keys := spreadKeys(t, "rel", 3)
	var rec recorder
	sub := s.dial(1, client.Options{OnCloud: rec.on})
	mine, theirs := s.dial(0, client.Options{}), s.dial(1, client.Options{})
	if _, err := sub.Get(ctx, cloud.Query{Keys: keys, Subscribe: true}); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := mine.Post(ctx, k, []byte("mine-"+k.String())); err != nil {
			t.Fatal(err)
		}
		if err := theirs.Post(ctx, k, []byte("theirs")); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, "6 updates", rec.count(6))
	if err := mine.Release(ctx, keys[0], keys[2]); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "2 deletions", rec.count(8))
	for _, n := range rec.all()[6:] {
		if n.Type != cloud.NotifyDeleted || n.Row.Uploader != mine.Ref() || string(n.Row.Data) != "mine-"+n.Key.String() {
			t.Fatalf("deletion %+v", n)
		}
	}
	res, err := sub.Get(ctx, cloud.Query{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, r := range res.Rows {
		left = append(left, fmt.Sprintf("%s %t", r.Key, r.Uploader == mine.Ref()))
	}
	if got, want := strings.Join(left, ", "), fmt.Sprintf("%s false, %s true, %s false, %s false", keys[0], keys[1], keys[1], keys[2]); res.Total != 4 || !sameSet(got, want) {
		t.Fatalf("left %s", got)
	}
}

func sameSet(a, b string) bool {
	x, y := strings.Split(a, ", "), strings.Split(b, ", ")
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func TestAcceptLimits(t *testing.T) {
	s := startSystem(t)
	ctx := testutil.Context(t)
	c := s.dial(0, client.Options{})
	other := s.dial(1, client.Options{})
	keys := spreadKeys(t, "limit", 8)
	// Two rows of 400 bytes: 800 of the 1000 allowed.
	for _, k := range keys[:2] {
		if err := c.Post(ctx, k, make([]byte, 400)); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Post(ctx, keys[2], []byte("other")); err != nil {
		t.Fatal(err)
	}
	snapshot := func() string {
		res, err := other.Get(ctx, cloud.Query{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, r := range res.Rows {
			parts = append(parts, fmt.Sprintf("%s %s %d", r.Key, r.Uploader, len(r.Data)))
		}
		return strings.Join(parts, ", ")
	}
	before := snapshot()
	check := func(what string, err, want error) {
		t.Helper()
		var ce *cloud.Error
		if !errors.Is(err, want) || !errors.As(err, &ce) {
			t.Fatalf("%s: %v, want %v", what, err, want)
		}
		if after := snapshot(); after != before {
			t.Fatalf("%s changed the rows:\n%s\nto\n%s", what, before, after)
		}
	}
	// Upload bytes per uploader, counted across rows: a third row of 300
	// passes 1000; overwriting a row with a larger one too.
	check("upload limit", c.Post(ctx, keys[3], make([]byte, 300)), cloud.ErrUploadLimit)
	check("upload limit on overwrite", func() error {
		if err := c.Post(ctx, keys[3], make([]byte, 150)); err != nil {
			return err
		}
		before = snapshot()
		return c.Post(ctx, keys[3], make([]byte, 300)) // 950 - 150 + 300
	}(), cloud.ErrUploadLimit)
	check("row size", c.Post(ctx, keys[4], make([]byte, 401)), cloud.ErrRowTooLarge)
	nine := append(slices.Clone(keys), key{Primary: "limit", Secondary: 99})
	_, err := c.Get(ctx, cloud.Query{Keys: nine})
	check("keys per query", err, cloud.ErrTooManyKeys)
	check("keys per release", c.Release(ctx, nine...), cloud.ErrTooManyKeys)
	for _, k := range keys[:4] {
		if _, err := c.Get(ctx, cloud.Query{Keys: []key{k}, Subscribe: true}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.Get(ctx, cloud.Query{Keys: keys[4:5], Subscribe: true})
	check("subscriptions per client", err, cloud.ErrTooManySubscriptions)
	// Subscribing again to a key already subscribed is no new
	// subscription.
	if _, err := c.Get(ctx, cloud.Query{Keys: keys[:1], Subscribe: true}); err != nil {
		t.Fatal(err)
	}
	// Bytes per download: rows of 400 and 200 bytes with a 2000-byte
	// limit.
	for i, k := range keys[4:8] {
		u := s.dial(i%2, client.Options{})
		if err := u.Post(ctx, k, make([]byte, 400)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := other.Get(ctx, cloud.Query{Keys: keys})
	if err != nil || !res.Truncated || len(res.Rows) == 0 || len(res.Rows) >= res.Total {
		t.Fatalf("download limit: truncated %v, %d of %d rows, %v", res.Truncated, len(res.Rows), res.Total, err)
	}
	size := 0
	for _, r := range res.Rows {
		size += cloudwire.RowSize(&r)
	}
	if size > 2000 {
		t.Fatalf("%d bytes downloaded, limit 2000", size)
	}
	// At least one row, even past the limit: the 4th row is 400 bytes and
	// the limit is cut at 2000 by the rows before it.
	res, err = other.Get(ctx, cloud.Query{Keys: keys[5:], Offset: 1})
	if err != nil || len(res.Rows) == 0 {
		t.Fatalf("offset download: %+v %v", res, err)
	}
}

func TestAcceptQueryFilters(t *testing.T) {
	s := startSystem(t)
	ctx := testutil.Context(t)
	// The external server rejects Posts under "forbidden" and Gets of
	// "secret"; every cloud replica rejects Posts under "cloud-no".
	s.cs[0].setFilter(func(op *plugins.CloudOp) error {
		switch {
		case op.Kind == plugins.CloudOpPost && op.Keys[0].Primary == "forbidden":
			return errors.New("not here")
		case op.Kind == plugins.CloudOpGet && slices.ContainsFunc(op.Keys, func(k key) bool { return k.Primary == "secret" }):
			return errors.New("no peeking")
		}
		return nil
	})
	for _, f := range s.cloudF {
		f.setFilter(func(op *plugins.CloudOp) error {
			if op.Kind == plugins.CloudOpPost && op.Keys[0].Primary == "cloud-no" {
				return fmt.Errorf("cloud says no to %s", op.Uploader)
			}
			return nil
		})
	}
	c := s.dial(0, client.Options{})
	peer := s.dial(1, client.Options{})
	for _, k := range []key{{Primary: "forbidden", Secondary: 1}, {Primary: "cloud-no", Secondary: 1}} {
		err := c.Post(ctx, k, []byte("x"))
		var ce *cloud.Error
		if !errors.Is(err, cloud.ErrRejected) || !errors.As(err, &ce) || ce.Message == "" {
			t.Fatalf("Post %s = %v", k, err)
		}
		res, err := peer.Get(ctx, cloud.Query{Keys: []key{k}})
		if err != nil || res.Total != 0 {
			t.Fatalf("stored after rejection: %+v %v", res, err)
		}
	}
	if _, err := c.Get(ctx, cloud.Query{Keys: []key{{Primary: "secret"}}}); !errors.Is(err, cloud.ErrRejected) {
		t.Fatalf("Get secret = %v", err)
	}
	// A rejected overwrite leaves the earlier row in place.
	k := key{Primary: "cloud-ok", Secondary: 1}
	if err := c.Post(ctx, k, []byte("kept")); err != nil {
		t.Fatal(err)
	}
	for _, f := range s.cloudF {
		f.setFilter(func(op *plugins.CloudOp) error {
			if op.Kind == plugins.CloudOpPost {
				return errors.New("frozen")
			}
			return nil
		})
	}
	if err := c.Post(ctx, k, []byte("lost")); !errors.Is(err, cloud.ErrRejected) {
		t.Fatalf("overwrite = %v", err)
	}
	res, err := peer.Get(ctx, cloud.Query{Keys: []key{k}})
	if err != nil || describeRows(res.Rows) != fmt.Sprintf("cloud-ok/1 %s=kept", c.Ref()) {
		t.Fatalf("after a rejected overwrite: %+v %v", res, err)
	}
	testutil.WaitFor(t, "client server settled", s.cs[0].settled)
	res, err = peer.Get(ctx, cloud.Query{Keys: []key{k}})
	if err != nil || describeRows(res.Rows) != fmt.Sprintf("cloud-ok/1 %s=kept", c.Ref()) {
		t.Fatalf("settled after a rejected overwrite: %+v %v", res, err)
	}
}

func TestAcceptClientServerKilled(t *testing.T) {
	s := startSystem(t)
	ctx := testutil.Context(t)
	keys := spreadKeys(t, "srv", 4)
	var rec recorder
	sub := s.dial(0, client.Options{OnCloud: rec.on})
	if _, err := sub.Get(ctx, cloud.Query{Keys: keys, Subscribe: true}); err != nil {
		t.Fatal(err)
	}
	var victims []client.ClientRef
	for i := range 3 {
		c := s.dial(1, client.Options{})
		victims = append(victims, c.Ref())
		for _, k := range keys {
			if err := c.Post(ctx, k, fmt.Appendf(nil, "v%d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	survivor := s.dial(0, client.Options{})
	if err := survivor.Post(ctx, keys[0], []byte("alive")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "13 updates", rec.count(13))
	s.csrv[1].Kill()
	testutil.WaitFor(t, "12 deletions", rec.count(25))
	deleted := map[string]bool{}
	for _, n := range rec.all()[13:] {
		if n.Type != cloud.NotifyDeleted || !slices.Contains(victims, n.Row.Uploader) {
			t.Fatalf("notification %+v", n)
		}
		deleted[n.Key.String()+" "+n.Row.Uploader.String()] = true
	}
	if len(deleted) != 12 {
		t.Fatalf("%d distinct deletions", len(deleted))
	}
	res, err := sub.Get(ctx, cloud.Query{Keys: keys})
	if err != nil || res.Total != 1 || res.Rows[0].Uploader != survivor.Ref() {
		t.Fatalf("after the kill: %+v %v", res, err)
	}
}

func TestAcceptReplicaKilledWhilePosting(t *testing.T) {
	s := startSystem(t)
	ctx := testutil.Context(t)
	keys := spreadKeys(t, "kill", 8)
	// One view per client server, each on half the keys (a client may
	// subscribe to 4).
	views := make([]*client.View, 2)
	for i := range views {
		c := s.dial(i, client.Options{})
		v, err := c.View(ctx, keys[4*i:4*i+4])
		if err != nil {
			t.Fatal(err)
		}
		views[i] = v
	}
	posters := make([]*client.Client, 4)
	for i := range posters {
		posters[i] = s.dial(i%2, client.Options{})
	}
	// The replica that owns the most keys dies while the clients post.
	victim := busiestReplica(keys)
	const rounds = 25
	var wg sync.WaitGroup
	errs := make(chan error, len(posters))
	started := make(chan struct{}, len(posters))
	for p, c := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range rounds {
				if round == 2 {
					started <- struct{}{}
				}
				for _, k := range keys {
					if err := c.Post(ctx, k, fmt.Appendf(nil, "p%d-r%d", p, round)); err != nil {
						errs <- fmt.Errorf("poster %d round %d: %w", p, round, err)
						return
					}
				}
			}
		}()
	}
	for range posters {
		<-started
	}
	s.Server(victim).Kill()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, p := range []*probe{s.world, s.cs[0], s.cs[1]} {
		testutil.WaitFor(t, "callers see two replicas", p.linked(2))
		testutil.WaitFor(t, "callers settled", p.settled)
	}
	// Every row of a connected uploader is present exactly once, with its
	// last value.
	res, err := posters[0].Get(ctx, cloud.Query{Keys: keys})
	if err != nil || res.Partial {
		t.Fatalf("Get = %+v, %v", res, err)
	}
	seen := map[string]string{}
	for _, r := range res.Rows {
		id := r.Key.String() + " " + r.Uploader.String()
		if _, dup := seen[id]; dup {
			t.Fatalf("row %s twice", id)
		}
		seen[id] = string(r.Data)
	}
	for p, c := range posters {
		for _, k := range keys {
			if got, want := seen[k.String()+" "+c.Ref().String()], fmt.Sprintf("p%d-r%d", p, rounds-1); got != want {
				t.Fatalf("%s of poster %d = %q, want %q", k, p, got, want)
			}
		}
	}
	if len(seen) != len(keys)*len(posters) || res.Total != len(seen) {
		t.Fatalf("%d rows (total %d), want %d", len(seen), res.Total, len(keys)*len(posters))
	}
	// The live views converge to the rows of a fresh Get.
	for i, v := range views {
		res, err := posters[0].Get(ctx, cloud.Query{Keys: v.Keys()})
		if err != nil {
			t.Fatal(err)
		}
		want := describeRows(res.Rows)
		testutil.WaitFor(t, fmt.Sprintf("view %d matches a fresh Get", i), func() bool {
			return describeRows(v.Rows()) == want && v.Complete()
		})
	}
}

func TestAcceptGetSubscribeUnderConcurrentPosts(t *testing.T) {
	s := startSystem(t)
	ctx := testutil.Context(t)
	k := key{Primary: "race", Secondary: 1}
	const posts = 150
	posters := make([]*client.Client, 4)
	for i := range posters {
		posters[i] = s.dial(i%2, client.Options{})
		if err := posters[i].Post(ctx, k, []byte("0")); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(posters))
	for _, c := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= posts; i++ {
				if err := c.Post(ctx, k, fmt.Append(nil, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// A raw subscriber reads its messages in the order the server sent
	// them: the snapshot, then each notification. Per uploader, the
	// values must continue the snapshot's one by one: nothing lost,
	// nothing doubled.
	conn := rawClient(t, s.csrv[0])
	get := cloudwire.Get{Req: 1, Query: cloud.Query{Keys: []key{k}, Subscribe: true}}
	if err := conn.WriteMessage(websocket.BinaryMessage, protocol.AppendWS(nil, protocol.KindCloudGet, 0, get.AppendTo(nil))); err != nil {
		t.Fatal(err)
	}
	// A View on the other client server, taken at the same time.
	vc := s.dial(1, client.Options{})
	v, err := vc.View(ctx, []key{k})
	if err != nil {
		t.Fatal(err)
	}
	last := map[ref]int{}
	gotResult := false
	done := func() bool {
		if len(last) < len(posters) {
			return false
		}
		for _, n := range last {
			if n != posts {
				return false
			}
		}
		return true
	}
	for !done() {
		f := readRaw(t, conn)
		switch f.Kind {
		case protocol.KindCloudResult:
			var m cloudwire.Result
			if err := m.Decode(f.Payload); err != nil || m.Code != cloud.CodeOK {
				t.Fatalf("result %+v %v", m, err)
			}
			for _, r := range m.Rows {
				last[r.Uploader] = atoi(t, r.Data)
			}
			gotResult = true
		case protocol.KindCloudNotify:
			if !gotResult {
				t.Fatal("a notification before the snapshot")
			}
			var m cloudwire.Notice
			if err := m.Decode(f.Payload); err != nil {
				t.Fatal(err)
			}
			n := atoi(t, m.Row.Data)
			if prev, ok := last[m.Row.Uploader]; ok && n != prev+1 {
				t.Fatalf("%s: %d after %d", m.Row.Uploader, n, prev)
			} else if !ok && n != 0 {
				t.Fatalf("%s: first seen at %d", m.Row.Uploader, n)
			}
			last[m.Row.Uploader] = n
		default:
			t.Fatalf("unexpected %s", f.Kind)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	res, err := vc.Get(ctx, cloud.Query{Keys: []key{k}})
	if err != nil || res.Total != len(posters) {
		t.Fatalf("final Get %+v %v", res, err)
	}
	testutil.WaitFor(t, "the view matches the final state", func() bool { return describeRows(v.Rows()) == describeRows(res.Rows) })
}

func atoi(t *testing.T, b []byte) int {
	var n int
	if _, err := fmt.Sscan(string(b), &n); err != nil {
		t.Fatalf("row data %q: %v", b, err)
	}
	return n
}

// rawClient connects a bare WebSocket game client and reads its welcome.
func rawClient(t *testing.T, s *clustertest.Server) *websocket.Conn {
	conn, _, err := websocket.DefaultDialer.Dial(s.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if f := readRaw(t, conn); f.Kind != protocol.KindClientWelcome {
		t.Fatalf("first message %s", f.Kind)
	}
	return conn
}

func readRaw(t *testing.T, conn *websocket.Conn) protocol.Frame {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, b, err := conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	f, err := protocol.DecodeWS(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestAcceptPartialGetAndLateResync(t *testing.T) {
	s := startSystem(t)
	ctx := testutil.Context(t)
	keys := spreadKeys(t, "slow", 6)
	r := rendezvous.NewRing([]string{"cloud-1", "cloud-2", "cloud-3"})
	slow := ownerOf(r, keys[0])
	var slowKeys []key
	for _, k := range keys {
		if ownerOf(r, k) == slow {
			slowKeys = append(slowKeys, k)
		}
	}
	up := s.dial(1, client.Options{})
	for _, k := range keys {
		if err := up.Post(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	// One replica answers reads of these keys after the Get timeout (1s).
	s.cloudF[slow].setFilter(func(op *plugins.CloudOp) error {
		if op.Kind == plugins.CloudOpGet {
			time.Sleep(1500 * time.Millisecond)
		}
		return nil
	})
	c := s.dial(0, client.Options{})
	res, err := c.Get(ctx, cloud.Query{Keys: keys})
	if err != nil || !res.Partial || !slices.Equal(res.Missing, slowKeys) || res.Total != len(keys)-len(slowKeys) {
		t.Fatalf("Get = partial %v missing %v total %d (%v); want missing %v", res.Partial, res.Missing, res.Total, err, slowKeys)
	}
	// A view gets the missing keys later, in a resync.
	v, err := c.View(ctx, keys[:4])
	if err != nil {
		t.Fatal(err)
	}
	if v.Complete() {
		t.Fatal("a view over a partial snapshot says it is complete")
	}
	s.cloudF[slow].setFilter(nil)
	testutil.WaitFor(t, "the view is complete", func() bool { return v.Complete() && len(v.Rows()) == 4 })
}

func TestAcceptReplicasAddedAndRestarted(t *testing.T) {
	s := startSystem(t)
	ctx := testutil.Context(t)
	keys := spreadKeys(t, "grow", 8)
	var views []*client.View
	for i := range 2 {
		v, err := s.dial(i, client.Options{}).View(ctx, keys[4*i:4*i+4])
		if err != nil {
			t.Fatal(err)
		}
		views = append(views, v)
	}
	posters := []*client.Client{s.dial(0, client.Options{}), s.dial(1, client.Options{})}
	post := func(round int) {
		t.Helper()
		for p, c := range posters {
			for _, k := range keys {
				if err := c.Post(ctx, k, fmt.Appendf(nil, "p%d-r%d", p, round)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := s.world.cm.Post(ctx, keys[0], fmt.Appendf(nil, "w-r%d", round)); err != nil {
			t.Fatal(err)
		}
	}
	check := func(stage string, replicas, round int) {
		t.Helper()
		for _, p := range []*probe{s.world, s.cs[0], s.cs[1]} {
			testutil.WaitFor(t, stage+": callers see the replicas", p.linked(replicas))
			testutil.WaitFor(t, stage+": callers settled", p.settled)
		}
		res, err := posters[0].Get(ctx, cloud.Query{Keys: keys})
		if err != nil || res.Partial || res.Total != 2*len(keys)+1 || len(res.Rows) != res.Total {
			t.Fatalf("%s: Get total %d rows %d partial %v (%v)", stage, res.Total, len(res.Rows), res.Partial, err)
		}
		for _, r := range res.Rows {
			want := fmt.Sprintf("w-r%d", round)
			for p, c := range posters {
				if r.Uploader == c.Ref() {
					want = fmt.Sprintf("p%d-r%d", p, round)
				}
			}
			if string(r.Data) != want {
				t.Fatalf("%s: %s of %s = %q, want %q", stage, r.Key, r.Uploader, r.Data, want)
			}
		}
		for i, v := range views {
			fresh, err := posters[0].Get(ctx, cloud.Query{Keys: v.Keys()})
			if err != nil {
				t.Fatal(err)
			}
			want := describeRows(fresh.Rows)
			testutil.WaitFor(t, fmt.Sprintf("%s: view %d matches", stage, i), func() bool {
				return describeRows(v.Rows()) == want && v.Complete()
			})
		}
	}
	post(0)
	// A fourth replica takes over some keys.
	if r := s.AddReplica("cloud", &Service{Config: testConfig}); r.ID() != "cloud-4" {
		t.Fatalf("added replica %s, want cloud-4", r.ID())
	}
	r4 := rendezvous.NewRing([]string{"cloud-1", "cloud-2", "cloud-3", "cloud-4"})
	took := 0
	for _, k := range keys {
		if ownerOf(r4, k) == "cloud-4" {
			took++
		}
	}
	post(1)
	check("after adding cloud-4", 4, 1)
	// cloud-2 restarts: a new incarnation with the same ID and an empty
	// store gets its keys' rows back from their uploaders' servers.
	s.Server("cloud-2").Kill()
	post(2)
	s.Server("cloud-2").Restart(&Service{Config: testConfig})
	post(3)
	check("after restarting cloud-2", 4, 3)
	t.Logf("cloud-4 took %d of %d keys", took, len(keys))
}

// The rows of a plugin's Get are its own: the frames read after it (which
// reuse the link's read buffer) do not change them.
func TestAcceptPluginGetRowsStayItsOwn(t *testing.T) {
	s := startSystem(t)
	ctx := testutil.Context(t)
	k := cloud.Key{Primary: "kept"}
	ring := rendezvous.NewRing([]string{"cloud-1", "cloud-2", "cloud-3"})
	other := cloud.Key{Primary: "kept", Secondary: 1}
	for ownerOf(ring, other) != ownerOf(ring, k) { // read over the same link
		other.Secondary++
	}
	want := bytes.Repeat([]byte("A"), 300)
	if err := s.world.cm.Post(ctx, k, want); err != nil {
		t.Fatal(err)
	}
	if err := s.world.cm.Post(ctx, other, bytes.Repeat([]byte("B"), 300)); err != nil {
		t.Fatal(err)
	}
	res, err := s.world.cm.Get(ctx, cloud.Query{Keys: []key{k}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 1 {
		t.Fatalf("%d rows, want 1", len(res.Rows))
	}
	for range 20 {
		if _, err := s.world.cm.Get(ctx, cloud.Query{Keys: []key{other}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := res.Rows[0].Data; !bytes.Equal(got, want) {
		t.Fatalf("the row changed after later Gets: %.20q…, want %.20q…", got, want)
	}
}
