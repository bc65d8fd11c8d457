package cloudmemory

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
	"github.com/cloudrift/cloudrift/rendezvous"
)

// notices records what a store notified, by server.
type notices struct {
	mu  sync.Mutex
	got map[string][]cloudwire.Notice
}

func (n *notices) notify(servers []string, b []byte) {
	var m cloudwire.Notice
	if err := m.Decode(b); err != nil {
		panic(err)
	}
	m.Row.Data = slices.Clone(m.Row.Data)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.got == nil {
		n.got = make(map[string][]cloudwire.Notice)
	}
	for _, s := range servers {
		n.got[s] = append(n.got[s], m)
	}
}

func (n *notices) take(server string) []cloudwire.Notice {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.got[server]
	delete(n.got, server)
	return out
}

// describe prints notices compactly: "U+ k/1 c#1 data", "D k/1 c#1 data".
func describe(ns []cloudwire.Notice) string {
	var parts []string
	for _, n := range ns {
		t := "U"
		if n.Type == cloudwire.Deleted {
			t = "D"
		}
		if n.Created {
			t += "+"
		}
		parts = append(parts, fmt.Sprintf("%s %s %s %s", t, n.Row.Key, n.Row.Uploader, n.Row.Data))
	}
	return strings.Join(parts, "; ")
}

func k(p string, s uint32) key { return key{Primary: p, Secondary: s} }

func up(server string, id uint64) ref { return ref{Server: server, ID: id} }

func post(st *store, kk key, u ref, data string) bool {
	return st.post(&cloudwire.SrvPost{Key: kk, Uploader: u, Addr: "addr-" + u.String(), Data: []byte(data)}, 1)
}

func rowsOf(rows []cloud.Row) string {
	var parts []string
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%s %s=%s", r.Key, r.Uploader, r.Data))
	}
	return strings.Join(parts, ", ")
}

func TestStorePostOverwriteNotify(t *testing.T) {
	var n notices
	st := newStore(&n)
	st.subscribe("e1", &cloudwire.SrvSub{Mode: cloudwire.SubAll, Keys: []key{k("a", 1)}})
	st.subscribe("e2", &cloudwire.SrvSub{Mode: cloudwire.SubList, Keys: []key{k("a", 1)}, Uploaders: []ref{up("c", 2)}})
	if !post(st, k("a", 1), up("c", 1), "one") {
		t.Fatal("first post did not create")
	}
	if post(st, k("a", 1), up("c", 1), "two") {
		t.Fatal("second post created")
	}
	post(st, k("a", 1), up("c", 2), "x")
	post(st, k("b", 1), up("c", 1), "other key")
	if got, want := describe(n.take("e1")), "U+ a/1 c#1 one; U a/1 c#1 two; U+ a/1 c#2 x"; got != want {
		t.Fatalf("e1 got %q, want %q", got, want)
	}
	if got, want := describe(n.take("e2")), "U+ a/1 c#2 x"; got != want {
		t.Fatalf("e2 got %q, want %q", got, want)
	}
	counts, rows, _ := st.get(&cloudwire.SrvGet{Keys: []key{k("a", 1)}}, 0)
	if counts[0] != 2 || rowsOf(rows) != "a/1 c#1=two, a/1 c#2=x" {
		t.Fatalf("counts %v rows %s", counts, rowsOf(rows))
	}
	if rows[0].Addr != "addr-c#1" || rows[0].Via != "c" {
		t.Fatalf("row %+v", rows[0])
	}
}

func TestStoreSyncPostIsSilentWhenIdentical(t *testing.T) {
	var n notices
	st := newStore(&n)
	st.subscribe("e", &cloudwire.SrvSub{Mode: cloudwire.SubAll, Keys: []key{k("a", 1)}})
	p := cloudwire.SrvPost{Key: k("a", 1), Uploader: up("c", 1), Data: []byte("v")}
	st.post(&p, 1)
	p.Sync = true
	st.post(&p, 1)
	p.Data = []byte("w")
	st.post(&p, 1)
	if got, want := describe(n.take("e")), "U+ a/1 c#1 v; U a/1 c#1 w"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestStoreReleaseAndDrop(t *testing.T) {
	var n notices
	st := newStore(&n)
	keys := []key{k("a", 1), k("a", 2), k("b", 1)}
	st.subscribe("e", &cloudwire.SrvSub{Mode: cloudwire.SubAll, Keys: keys})
	for _, kk := range keys {
		post(st, kk, up("c", 1), "c1-"+kk.String())
		post(st, kk, up("c", 2), "c2-"+kk.String())
		post(st, kk, up("d", 1), "d1-"+kk.String())
	}
	n.take("e")
	if got := st.release(up("c", 1), []key{k("a", 2), k("zz", 1)}); got != 1 {
		t.Fatalf("release deleted %d", got)
	}
	if got, want := describe(n.take("e")), "D a/2 c#1 c1-a/2"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := st.dropUploader(up("c", 1)); got != 2 {
		t.Fatalf("dropUploader deleted %d", got)
	}
	if got := len(n.take("e")); got != 2 {
		t.Fatalf("%d notices", got)
	}
	if got := st.dropServer("c", 0); got != 3 {
		t.Fatalf("dropServer deleted %d", got)
	}
	n.take("e")
	_, rows, _ := st.get(&cloudwire.SrvGet{Keys: keys}, 0)
	if got, want := rowsOf(rows), "a/1 d#1=d1-a/1, a/2 d#1=d1-a/2, b/1 d#1=d1-b/1"; got != want {
		t.Fatalf("left %s, want %s", got, want)
	}
}

func TestStoreDropServerKeepsNewIncarnation(t *testing.T) {
	var n notices
	st := newStore(&n)
	st.post(&cloudwire.SrvPost{Key: k("a", 1), Uploader: up("w", 0), Data: []byte("old")}, 1)
	st.post(&cloudwire.SrvPost{Key: k("a", 2), Uploader: up("w", 0), Data: []byte("old")}, 1)
	// The server restarted (incarnation 2) and posted a again before the
	// old incarnation's rows were dropped.
	st.post(&cloudwire.SrvPost{Key: k("a", 1), Uploader: up("w", 0), Data: []byte("new")}, 2)
	if got := st.dropServer("w", 1); got != 1 {
		t.Fatalf("dropped %d", got)
	}
	_, rows, _ := st.get(&cloudwire.SrvGet{Keys: []key{k("a", 1), k("a", 2)}}, 0)
	if got := rowsOf(rows); got != "a/1 w#0=new" {
		t.Fatalf("left %s", got)
	}
}

func TestStoreSyncSession(t *testing.T) {
	var n notices
	st := newStore(&n)
	st.subscribe("sub", &cloudwire.SrvSub{Mode: cloudwire.SubAll, Keys: []key{k("a", 1), k("a", 2), k("a", 3)}})
	post(st, k("a", 1), up("e", 1), "keep")
	post(st, k("a", 2), up("e", 1), "gone")
	post(st, k("a", 3), up("f", 1), "other server")
	n.take("sub")
	st.syncStart("e")
	st.post(&cloudwire.SrvPost{Sync: true, Key: k("a", 1), Uploader: up("e", 1), Addr: "addr-e#1", Data: []byte("keep")}, 1)
	if got := st.syncEnd("e"); got != 1 {
		t.Fatalf("syncEnd deleted %d", got)
	}
	if got, want := describe(n.take("sub")), "D a/2 e#1 gone"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestStoreGetWindow(t *testing.T) {
	st := newStore(&notices{})
	// Rows are posted out of order; results come in key order, then
	// uploader order.
	for _, u := range []ref{up("s2", 1), up("s1", 10), up("s1", 2)} {
		post(st, k("x", 1), u, "x-"+u.String())
		post(st, k("y", 1), u, "y-"+u.String())
	}
	q := cloudwire.SrvGet{Keys: []key{k("y", 1), k("none", 0), k("x", 1)}}
	counts, rows, cut := st.get(&q, 0)
	if !slices.Equal(counts, []uint32{3, 0, 3}) || cut {
		t.Fatalf("counts %v cut %v", counts, cut)
	}
	want := "y/1 s1#2=y-s1#2, y/1 s1#10=y-s1#10, y/1 s2#1=y-s2#1, x/1 s1#2=x-s1#2, x/1 s1#10=x-s1#10, x/1 s2#1=x-s2#1"
	if got := rowsOf(rows); got != want {
		t.Fatalf("rows %s\nwant %s", got, want)
	}
	q.Offset, q.Limit = 2, 3
	_, rows, _ = st.get(&q, 0)
	if got, want := rowsOf(rows), "y/1 s2#1=y-s2#1, x/1 s1#2=x-s1#2, x/1 s1#10=x-s1#10"; got != want {
		t.Fatalf("window %s, want %s", got, want)
	}
	// Uploader filter, unsorted and with a duplicate and an unknown ref.
	q = cloudwire.SrvGet{Keys: []key{k("x", 1)}, Uploaders: []ref{up("s2", 1), up("zz", 1), up("s1", 2), up("s2", 1)}}
	counts, rows, _ = st.get(&q, 0)
	if counts[0] != 2 || rowsOf(rows) != "x/1 s1#2=x-s1#2, x/1 s2#1=x-s2#1" {
		t.Fatalf("filtered %v %s", counts, rowsOf(rows))
	}
	// Count only.
	q = cloudwire.SrvGet{Keys: []key{k("x", 1), k("y", 1)}, CountOnly: true}
	counts, rows, _ = st.get(&q, 0)
	if !slices.Equal(counts, []uint32{3, 3}) || len(rows) != 0 {
		t.Fatalf("count only %v %d rows", counts, len(rows))
	}
}

func TestStoreGetMaxBytes(t *testing.T) {
	st := newStore(&notices{})
	for i := range 5 {
		post(st, k("k", 1), up("s", uint64(i+1)), strings.Repeat("d", 100))
	}
	q := cloudwire.SrvGet{Keys: []key{k("k", 1)}}
	_, all, _ := st.get(&q, 0)
	size := cloudwire.RowSize(&all[0])
	counts, rows, cut := st.get(&q, 2*size+size/2)
	if len(rows) != 2 || !cut || counts[0] != 5 {
		t.Fatalf("%d rows, cut %v, counts %v", len(rows), cut, counts)
	}
	// At least one row, even when it alone passes the limit.
	_, rows, cut = st.get(&q, 1)
	if len(rows) != 1 || !cut {
		t.Fatalf("%d rows, cut %v", len(rows), cut)
	}
	_, rows, cut = st.get(&q, 5*size)
	if len(rows) != 5 || cut {
		t.Fatalf("%d rows, cut %v", len(rows), cut)
	}
}

func TestStoreSubscriptionModes(t *testing.T) {
	var n notices
	st := newStore(&n)
	kk := k("a", 1)
	st.subscribe("e", &cloudwire.SrvSub{Mode: cloudwire.SubList, Keys: []key{kk}, Uploaders: []ref{up("c", 1)}})
	post(st, kk, up("c", 1), "1")
	post(st, kk, up("c", 2), "2")
	st.subscribe("e", &cloudwire.SrvSub{Mode: cloudwire.SubAll, Keys: []key{kk}})
	post(st, kk, up("c", 2), "3")
	st.subscribe("e", &cloudwire.SrvSub{Mode: cloudwire.SubRemove, Keys: []key{kk}})
	post(st, kk, up("c", 1), "4")
	if got, want := describe(n.take("e")), "U+ a/1 c#1 1; U a/1 c#2 3"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	st.subscribe("e", &cloudwire.SrvSub{Mode: cloudwire.SubAll, Keys: []key{kk, k("b", 1)}})
	st.dropSubscriptions("e")
	post(st, kk, up("c", 1), "5")
	if got := n.take("e"); len(got) != 0 {
		t.Fatalf("notified after dropSubscriptions: %s", describe(got))
	}
	if s := st.stats(); s.Subscriptions != 0 || s.Keys != 1 || s.Rows != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestStoreMoveOut(t *testing.T) {
	var n notices
	st := newStore(&n)
	post(st, k("stay", 1), up("e", 1), "s")
	post(st, k("go", 1), up("e", 1), "g")
	post(st, k("go", 1), up("f", 1), "g")
	st.subscribe("g", &cloudwire.SrvSub{Mode: cloudwire.SubAll, Keys: []key{k("go", 1), k("go", 2)}})
	tell := st.moveOut(func(kk key) bool { return kk.Primary == "stay" })
	for _, srv := range []string{"e", "f"} {
		if !slices.Equal(tell[srv], []key{k("go", 1)}) {
			t.Fatalf("tell %s: %v", srv, tell[srv])
		}
	}
	if got := tell["g"]; len(got) != 2 {
		t.Fatalf("tell g: %v", got)
	}
	if len(n.take("g")) != 0 {
		t.Fatal("moving out notified")
	}
	if s := st.stats(); s.Keys != 1 || s.Rows != 1 || s.Subscriptions != 0 {
		t.Fatalf("stats %+v", s)
	}
	// The indexes forgot the moved rows.
	if got := st.dropServer("f", 0); got != 0 {
		t.Fatalf("dropServer found %d moved rows", got)
	}
}

func TestStoreConcurrentPostsKeepOrderPerKey(t *testing.T) {
	var n notices
	st := newStore(&n)
	kk := k("hot", 1)
	st.subscribe("e", &cloudwire.SrvSub{Mode: cloudwire.SubAll, Keys: []key{kk}})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				post(st, kk, up("c", uint64(w)), fmt.Sprint(i))
			}
		}()
	}
	wg.Wait()
	// Per uploader, notifications arrive in posting order and the last
	// one is the stored value.
	last := make(map[ref]int)
	for _, m := range n.take("e") {
		var i int
		fmt.Sscan(string(m.Row.Data), &i)
		if prev, ok := last[m.Row.Uploader]; ok && i != prev+1 {
			t.Fatalf("%s: %d after %d", m.Row.Uploader, i, prev)
		}
		last[m.Row.Uploader] = i
	}
	if len(last) != 8 {
		t.Fatalf("%d uploaders notified", len(last))
	}
	counts, _, _ := st.get(&cloudwire.SrvGet{Keys: []key{kk}}, 0)
	if counts[0] != 8 {
		t.Fatalf("count %d", counts[0])
	}
}

// TestKeyOwnership checks keyHash on the rendezvous ring: owners do not
// depend on the order of IDs, removing a replica moves only its keys, and
// keys spread evenly.
func TestKeyOwnership(t *testing.T) {
	r3 := rendezvous.NewRing([]string{"c3", "c1", "c2", "c1"})
	if len(r3.IDs()) != 3 || !r3.Has("c2") || r3.Has("c4") {
		t.Fatalf("ring %v", r3.IDs())
	}
	if ownerOf(rendezvous.Ring{}, k("a", 1)) != "" {
		t.Fatal("empty ring owns")
	}
	r2 := rendezvous.NewRing([]string{"c1", "c3"})
	per := make(map[string]int)
	moved := 0
	const n = 3000
	for i := range n {
		kk := k(fmt.Sprintf("key-%d", i), uint32(i%7))
		o3, o2 := ownerOf(r3, kk), ownerOf(r2, kk)
		if o3 != ownerOf(rendezvous.NewRing([]string{"c2", "c3", "c1"}), kk) {
			t.Fatal("owner depends on the order of IDs")
		}
		per[o3]++
		if o3 != "c2" && o2 != o3 {
			moved++
		}
		if o3 == "c2" {
			continue
		}
	}
	if moved != 0 {
		t.Fatalf("removing c2 moved %d keys it did not own", moved)
	}
	for id, c := range per {
		if c < n/3-n/10 || c > n/3+n/10 {
			t.Fatalf("uneven spread: %s owns %d of %d", id, c, n)
		}
	}
}
