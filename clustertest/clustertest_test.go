package clustertest_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/registry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// watcher is a plugin that records what its server sees of its peers, as
// "connected world-2", "disconnected world-2", "left world-2".
type watcher struct {
	mu     sync.Mutex
	events []string
}

func (w *watcher) record(ev string, s plugins.RemoteServer) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, ev+" "+s.ID())
	return nil
}

func (w *watcher) ServerConnected(s plugins.RemoteServer) error { return w.record("connected", s) }
func (w *watcher) ServerDisconnected(s plugins.RemoteServer, _ error) error {
	return w.record("disconnected", s)
}
func (w *watcher) ServerLeft(s plugins.RemoteServer) error { return w.record("left", s) }

func (w *watcher) count(ev string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, e := range w.events {
		if e == ev {
			n++
		}
	}
	return n
}

// remotes returns the servers of group that srv sees, sorted by ID.
func remotes(t *testing.T, srv *clustertest.Server, group string) []plugins.RemoteServer {
	t.Helper()
	rg, err := srv.Host().RemoteGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	return rg.Servers()
}

func TestStartRunsAndLinksEveryReplica(t *testing.T) {
	sys := clustertest.Start(t, exampleYAML)
	var ids []string
	for _, g := range []string{"lobby", "world"} {
		for _, s := range sys.Servers(g) {
			if !s.Running() {
				t.Errorf("%s is not running", s.ID())
			}
			ids = append(ids, s.ID())
		}
	}
	if want := []string{"lobby-1", "world-1", "world-2"}; !slices.Equal(ids, want) {
		t.Fatalf("servers %v, want %v", ids, want)
	}
	for _, r := range remotes(t, sys.Server("lobby-1"), "world") {
		if r.State() != plugins.StateConnected {
			t.Errorf("lobby-1's link with %s is %v after Start, want connected", r.ID(), r.State())
		}
	}
	if got := sys.Replica("world", 1).ID(); got != "world-2" {
		t.Errorf("Replica(world, 1) = %s, want world-2", got)
	}
	lobby := sys.Server("lobby-1")
	if want := "ws://" + lobby.Addr() + "/play"; lobby.URL() != want {
		t.Errorf("URL %s, want %s", lobby.URL(), want)
	}
	c := lobby.Dial()
	if c.Ref().Server != "lobby-1" {
		t.Errorf("client welcomed by %q, want lobby-1", c.Ref().Server)
	}
	if n := len(sys.Hub().Members("world")); n != 2 {
		t.Errorf("hub lists %d world servers, want 2", n)
	}
}

func TestKillIsSeenByPeersAndRestartIsANewIncarnation(t *testing.T) {
	w := &watcher{}
	sys := clustertest.Start(t, exampleYAML, clustertest.WithPlugins("lobby-1", w))
	victim := sys.Server("world-2")
	before := victim.Incarnation()

	victim.Kill()
	if victim.Running() {
		t.Fatal("world-2 runs after Kill")
	}
	sys.WaitFor("lobby-1 to see world-2's link drop", func() bool { return w.count("disconnected world-2") == 1 })
	sys.WaitFor("lobby-1 to count one link up", func() bool { return sys.Server("lobby-1").Cluster().Stats().LinksUp == 1 })

	victim.Restart()
	if victim.Incarnation() == before {
		t.Error("the restarted world-2 has its old incarnation")
	}
	sys.WaitLinked("lobby")
	sys.WaitFor("lobby-1 to see world-2 connect again", func() bool { return w.count("connected world-2") == 2 })
	if r := remotes(t, sys.Server("lobby-1"), "world"); len(r) != 2 || r[1].Incarnation() != victim.Incarnation() {
		t.Errorf("lobby-1 sees world servers %v, want world-1 and the new world-2", r)
	}
}

func TestAddReplicaThenShutdown(t *testing.T) {
	w := &watcher{}
	sys := clustertest.Start(t, exampleYAML, clustertest.WithPlugins("lobby-1", w))
	added := sys.AddReplica("world")
	if added.ID() != "world-3" || added.Group() != "world" {
		t.Fatalf("AddReplica gave %s of %s, want world-3 of world", added.ID(), added.Group())
	}
	sys.WaitLinkedServer("lobby-1")
	if r := remotes(t, sys.Server("lobby-1"), "world"); len(r) != 3 || r[2].ID() != "world-3" || r[2].State() != plugins.StateConnected {
		t.Errorf("lobby-1 sees world servers %v, want world-3 connected too", r)
	}
	added.Shutdown()
	sys.WaitFor("lobby-1 to see world-3 leave", func() bool { return w.count("left world-3") == 1 })
	for _, m := range sys.Hub().Members("world") {
		if m.ID == "world-3" {
			t.Error("world-3 is still in the registry after Shutdown")
		}
	}
}

func TestNewUnstartedIsNotStartedUntilAsked(t *testing.T) {
	sys := clustertest.New(t, exampleYAML)
	srv := sys.NewUnstarted(cluster.Options{Group: "world", ID: "world-9"})
	if srv.Addr() != nil || len(sys.Hub().Members("world")) != 0 {
		t.Fatalf("an unstarted server listens on %v or is registered: %v", srv.Addr(), sys.Hub().Members("world"))
	}
	if len(sys.Servers("world")) != 0 {
		t.Error("the kit tracks an unstarted server")
	}
	if err := srv.Start(sys.Context()); err != nil {
		t.Fatal(err)
	}
	if m := sys.Hub().Members("world"); len(m) != 1 || m[0].ID != "world-9" || m[0].Address != srv.Addr().String() {
		t.Errorf("after Start the registry lists %v, want world-9 at %v", m, srv.Addr())
	}
}

func TestStartSystemLeavesTheCallersSystemAlone(t *testing.T) {
	in := &config.System{
		System: "kit", Secret: "a-secret-of-sufficient-length",
		Groups: []config.Group{{Name: "solo", Visibility: config.Internal}},
	}
	sys := clustertest.StartSystem(t, in)
	if in.Links.BackoffMax != 0 {
		t.Errorf("StartSystem changed the caller's links: %+v", in.Links)
	}
	if got := sys.Config().Links.BackoffMax; got > config.Duration(100*time.Millisecond) {
		t.Errorf("the kit's backoffMax is %v, want at most 100ms", got)
	}
	if !sys.Server("solo-1").Running() {
		t.Error("solo-1 is not running")
	}
}

func TestStartServerWithAnotherSecretIsRefused(t *testing.T) {
	sys := clustertest.New(t, exampleYAML)
	world := sys.StartServer("world", "world-1")
	bad := *sys.Config()
	bad.Secret = "another-secret-of-sufficient-length"
	sys.StartServerWith(cluster.Options{System: &bad, Group: "lobby", ID: "lobby-bad"})
	sys.WaitFor("world-1 to refuse lobby-bad", func() bool { return world.Cluster().Stats().Refused > 0 })
	if n := world.Cluster().Stats().LinksUp; n != 0 {
		t.Errorf("world-1 has %d links up with a server of another secret", n)
	}
}

// fakeTB records the first failure of the kit and ends the goroutine, as
// testing's Fatalf does; everything else goes to the real test.
type fakeTB struct {
	*testing.T
	mu    sync.Mutex
	fatal string
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	if f.fatal == "" {
		f.fatal = fmt.Sprintf(format, args...)
	}
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fatal != "" || f.T.Failed()
}

// fatalOf runs body with a fake TB on its own goroutine and returns the
// message it failed with ("" when it did not).
func fatalOf(t *testing.T, body func(tb clustertest.TB)) string {
	t.Helper()
	f := &fakeTB{T: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(f)
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fatal
}

func TestWaitForFailsNamingWhatItAwaited(t *testing.T) {
	start := time.Now()
	msg := fatalOf(t, func(tb clustertest.TB) {
		sys := clustertest.New(tb, exampleYAML, clustertest.WithPatience(50*time.Millisecond))
		sys.WaitFor("the moon to turn blue", func() bool { return false })
	})
	if want := "clustertest: timed out after 50ms waiting for the moon to turn blue"; msg != want {
		t.Errorf("failed with %q, want %q", msg, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the wait took %v, bounded by 50ms", d)
	}
}

func TestWaitLinkedFailsNamingTheMissingLink(t *testing.T) {
	// A world server that the registry lists at an address where nothing
	// listens: the lobby never links with it.
	msg := fatalOf(t, func(tb clustertest.TB) {
		sys := clustertest.New(tb, exampleYAML, clustertest.WithPatience(300*time.Millisecond))
		sys.StartServer("world", "world-1")
		sys.StartServer("lobby", "lobby-1")
		ghost := sys.Hub().Connector()
		tb.Cleanup(func() { ghost.Close() })
		m := registry.Member{ID: "world-9", Group: "world", Address: "127.0.0.1:1", Incarnation: 9}
		if err := ghost.Register(context.Background(), m); err != nil {
			tb.Fatalf("register the ghost: %v", err)
		}
		sys.WaitLinked("lobby")
	})
	want := "clustertest: timed out after 300ms waiting for every server of lobby linked to every server of world (not linked: lobby-1→world-9)"
	if msg != want {
		t.Errorf("failed with %q, want %q", msg, want)
	}
}

func TestMisuseFailsTheTest(t *testing.T) {
	for name, tc := range map[string]struct {
		body func(sys *clustertest.System)
		want string
	}{
		"unknown server": {func(sys *clustertest.System) { sys.Server("world-7") }, "clustertest: no server world-7 was started"},
		"unknown group":  {func(sys *clustertest.System) { sys.StartGroup("moon") }, `clustertest: system "example" has no group "moon"`},
		"internal URL": {func(sys *clustertest.System) { sys.Server("world-1").URL() },
			"clustertest: server world-1 is in internal group world, which takes no game clients"},
		"restart running": {func(sys *clustertest.System) { sys.Server("world-1").Restart() },
			"clustertest: restart world-1: still running; Kill or Shutdown it first"},
		"kill twice": {func(sys *clustertest.System) { sys.Server("world-1").Kill(); sys.Server("world-1").Kill() },
			"clustertest: kill world-1: not running"},
		"start twice": {func(sys *clustertest.System) { sys.StartServer("world", "world-1") },
			"clustertest: server world-1 started twice"},
	} {
		t.Run(name, func(t *testing.T) {
			msg := fatalOf(t, func(tb clustertest.TB) {
				sys := clustertest.New(tb, exampleYAML)
				sys.StartServer("world", "world-1")
				tc.body(sys)
			})
			if msg != tc.want {
				t.Errorf("failed with %q, want %q", msg, tc.want)
			}
		})
	}
}

func TestBadYAMLFailsWithTheParseError(t *testing.T) {
	msg := fatalOf(t, func(tb clustertest.TB) { clustertest.New(tb, "system: kit\ngroups: 3\n") })
	if !strings.HasPrefix(msg, "clustertest: cluster.yaml:") {
		t.Errorf("failed with %q, want the parse error with its file and line", msg)
	}
}
