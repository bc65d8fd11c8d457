package directory

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/examples/internal/demotest"
	"github.com/cloudrift/cloudrift/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// system runs the example's cluster.yaml in-process: client-1, client-2
// and cloud-1 to cloud-3, over loopback.
type system struct {
	*demotest.System
	t     *testing.T
	guard Guard // the guard's settings, as the file gives them
}

func startSystem(t *testing.T) *system {
	t.Helper()
	s := &system{System: demotest.Load(t, "cluster.yaml"), t: t}
	s.Settings("client", GuardPlugin, &s.guard)
	s.StartGroup("cloud")
	s.StartGroup("client")
	s.WaitLinked("client")
	return s
}

// dial connects a game client to a client server; token, when set, is
// presented as the host token. The client is closed when the test ends.
func (s *system) dial(id, token string, onCloud func(cloud.Notification)) *client.Client {
	s.t.Helper()
	opts := client.Options{OnCloud: onCloud}
	if token != "" {
		opts.Header = http.Header{TokenHeader: []string{token}}
	}
	return s.Server(id).DialWith(opts)
}

// names returns the names of servers, in order.
func names(ss []Server) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name)
	}
	return out
}

// notes records cloud notifications.
type notes struct {
	mu sync.Mutex
	ns []cloud.Notification
}

func (n *notes) add(x cloud.Notification) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ns = append(n.ns, x)
}

func (n *notes) all() []cloud.Notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.ns)
}

func TestDirectory(t *testing.T) {
	s := startSystem(t)
	ctx := testutil.Context(t)
	app, token := s.guard.App, s.guard.HostToken
	if app == "" || token == "" {
		t.Fatalf("cluster.yaml gives app %q, host token %q", app, token)
	}

	// A browser watching from the start, and one that follows deletions of
	// the name field through raw notifications.
	browser := s.dial("client-2", "", nil)
	watch, err := Watch(ctx, browser, app)
	if err != nil {
		t.Fatal(err)
	}
	if got := watch.Servers(nil); len(got) != 0 || !watch.Complete() {
		t.Fatalf("empty directory: %v, complete %v", got, watch.Complete())
	}
	var seen notes
	follower := s.dial("client-1", "", seen.add)
	if _, err := follower.Get(ctx, cloud.Query{Keys: []cloud.Key{key(app, FieldName)}, Subscribe: true}); err != nil {
		t.Fatal(err)
	}

	// Two game servers on different client servers list themselves.
	alpha := s.dial("client-1", token, nil)
	bravo := s.dial("client-2", token, nil)
	la := Listing{Name: "alpha", Level: "dust", Players: 3, MaxPlayers: 16, GamePort: 27015, PlayerList: []string{"ann", "bob", "cy"}}
	lb := Listing{Name: "bravo", Level: "forest", Players: 8, MaxPlayers: 8, GamePort: 27016, PlayerList: []string{"d", "e", "f", "g", "h", "i", "j", "k"}}
	if err := Announce(ctx, alpha, app, la); err != nil {
		t.Fatal(err)
	}
	if err := Announce(ctx, bravo, app, lb); err != nil {
		t.Fatal(err)
	}

	list, err := List(ctx, browser, app, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(list); !slices.Equal(got, []string{"alpha", "bravo"}) {
		t.Fatalf("List = %v", got)
	}
	for i, w := range []struct {
		c   *client.Client
		l   Listing
		via string
	}{{alpha, la, "client-1"}, {bravo, lb, "client-2"}} {
		got := list[i]
		host, _, err := net.SplitHostPort(got.RemoteAddr)
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("%s: remote address %q", got.Name, got.RemoteAddr)
		}
		if got.Ref != w.c.Ref() || got.Via != w.via || got.Addr != fmt.Sprintf("127.0.0.1:%d", w.l.GamePort) ||
			got.Level != w.l.Level || got.Players != w.l.Players || got.MaxPlayers != w.l.MaxPlayers {
			t.Fatalf("listed %+v, want ref %s via %s and %+v", got, w.c.Ref(), w.via, w.l)
		}
		if got.PlayerList != nil {
			t.Fatalf("List carries the player list of %s", got.Name)
		}
	}

	// Filters.
	if got, _ := List(ctx, browser, app, OnLevel("dust")); !slices.Equal(names(got), []string{"alpha"}) {
		t.Fatalf("on level dust: %v", names(got))
	}
	if got, _ := List(ctx, browser, app, NotFull()); !slices.Equal(names(got), []string{"alpha"}) {
		t.Fatalf("not full: %v", names(got))
	}
	if got, _ := List(ctx, browser, app, All(OnLevel("forest"), NotFull())); len(got) != 0 {
		t.Fatalf("forest, not full: %v", names(got))
	}

	// Details: every field of one server, through the uploader filter.
	d, err := Details(ctx, browser, app, bravo.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "bravo" || !slices.Equal(d.PlayerList, lb.PlayerList) {
		t.Fatalf("details of bravo: %+v", d)
	}
	if _, err := Details(ctx, browser, app, browser.Ref()); !errors.Is(err, ErrNotListed) {
		t.Fatalf("details of a browser: %v", err)
	}

	// The live list has both, and follows a change.
	testutil.WaitFor(t, "the watcher lists both", func() bool { return slices.Equal(names(watch.Servers(nil)), []string{"alpha", "bravo"}) })
	if err := SetPlayers(ctx, alpha, app, 4, []string{"ann", "bob", "cy", "dee"}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the watcher sees alpha's fourth player", func() bool {
		ss := watch.Servers(OnLevel("dust"))
		return len(ss) == 1 && ss[0].Players == 4
	})

	// The guard: a player may not list itself, a game server may not post
	// a malformed field, a wrong token is refused; nothing changes.
	if err := Announce(ctx, browser, app, Listing{Name: "rogue", GamePort: 1}); !errors.Is(err, cloud.ErrRejected) {
		t.Fatalf("a player announcing: %v", err)
	}
	if err := alpha.Post(ctx, key(app, FieldPlayers), []byte{1, 2, 3}); !errors.Is(err, cloud.ErrRejected) {
		t.Fatalf("a 3-byte player count: %v", err)
	}
	if err := alpha.Post(ctx, key(app, 99), nil); !errors.Is(err, cloud.ErrRejected) {
		t.Fatalf("an unknown field: %v", err)
	}
	if _, err := client.Dial(ctx, client.Options{URL: s.Server("client-1").URL(), Header: http.Header{TokenHeader: []string{"wrong"}}}); !errors.Is(err, client.ErrAuthRefused) {
		t.Fatalf("a wrong token: %v", err)
	}
	d, err = Details(ctx, browser, app, alpha.Ref())
	if err != nil || d.Players != 4 || len(d.PlayerList) != 4 {
		t.Fatalf("alpha after the rejections: %+v, %v", d, err)
	}
	if got, _ := List(ctx, browser, app, nil); !slices.Equal(names(got), []string{"alpha", "bravo"}) {
		t.Fatalf("after the rejections: %v", names(got))
	}

	// alpha delists itself: it vanishes, bravo stays.
	if err := Delist(ctx, alpha, app); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "alpha vanishes from the watcher", func() bool { return slices.Equal(names(watch.Servers(nil)), []string{"bravo"}) })
	if got, _ := List(ctx, browser, app, nil); !slices.Equal(names(got), []string{"bravo"}) {
		t.Fatalf("after alpha delisted: %v", names(got))
	}
	if _, err := Details(ctx, browser, app, alpha.Ref()); !errors.Is(err, ErrNotListed) {
		t.Fatalf("details of a delisted server: %v", err)
	}

	// bravo crashes (its connection ends): it vanishes with nothing to
	// call, and a follower of the name field gets Deleted with its name.
	bravo.Close()
	testutil.WaitFor(t, "bravo vanishes from the watcher", func() bool { return len(watch.Servers(nil)) == 0 })
	if got, _ := List(ctx, browser, app, nil); len(got) != 0 {
		t.Fatalf("after bravo left: %v", names(got))
	}
	testutil.WaitFor(t, "the follower sees both names deleted", func() bool {
		deleted := map[string]ClientRef{}
		for _, n := range seen.all() {
			if n.Type == cloud.NotifyDeleted {
				deleted[string(n.Row.Data)] = n.Row.Uploader
			}
		}
		return deleted["alpha"] == alpha.Ref() && deleted["bravo"] == bravo.Ref()
	})
	var created int
	for _, n := range seen.all() {
		if n.Type == cloud.NotifyUpdated && n.Created {
			created++
		}
	}
	if created != 2 {
		t.Fatalf("the follower saw %d names created, want 2: %+v", created, seen.all())
	}
}

func TestListingValidate(t *testing.T) {
	good := Listing{Name: "a", Level: "b", Players: 1, MaxPlayers: 2, GamePort: 3, PlayerList: []string{"x"}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]Listing{
		"no name":      {GamePort: 1},
		"no port":      {Name: "a"},
		"port too big": {Name: "a", GamePort: 70000},
		"long level":   {Name: "a", GamePort: 1, Level: string(make([]byte, MaxTextBytes+1))},
		"newline":      {Name: "a\nb", GamePort: 1},
		"bad player":   {Name: "a", GamePort: 1, PlayerList: []string{"x\ny"}},
		"negative":     {Name: "a", GamePort: 1, Players: -1},
	} {
		if err := l.Validate(); !errors.Is(err, ErrBadListing) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
