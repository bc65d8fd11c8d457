package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/examples/directory"
	"github.com/cloudrift/cloudrift/examples/openworld"
	"github.com/cloudrift/cloudrift/examples/openworld/bots"
	"github.com/cloudrift/cloudrift/examples/openworld/web"
	"github.com/cloudrift/cloudrift/internal/browsertest"
	"github.com/cloudrift/cloudrift/internal/testutil"

	_ "github.com/cloudrift/cloudrift/plugins/cloudmemory"
)

var screenshot = flag.String("screenshot", "", "write a PNG of the page, with bots playing, to this `file` (docs/images/openworld.png)")

// world is the repository's cluster.yaml running in the test, the page
// served for it, and the gateways of client-1 and client-2.
type world struct {
	sys      *clustertest.System
	cfg      web.Config
	pageURL  string
	gateways []*openworld.Gateway
}

func startWorld(t *testing.T) *world {
	t.Helper()
	w := &world{gateways: []*openworld.Gateway{new(openworld.Gateway), new(openworld.Gateway)}}
	w.sys = clustertest.Load(t, "../../../cluster.yaml",
		clustertest.WithPlugins("client-1", w.gateways[0]), clustertest.WithPlugins("client-2", w.gateways[1]))
	w.sys.StartAll()
	w.sys.WaitLinked("client")
	var urls []string
	for _, s := range w.sys.Servers("client") {
		urls = append(urls, s.URL())
	}
	cfg, err := web.ConfigOf(w.sys.Config(), urls)
	if err != nil {
		t.Fatal(err)
	}
	w.cfg = cfg
	srv := httptest.NewServer(web.Handler(cfg))
	t.Cleanup(srv.Close)
	w.pageURL = srv.URL + "/"
	return w
}

// pageState is what window.openworld.state() returns.
type pageState struct {
	Connected bool
	Error     *string
	Me        *struct {
		Ref, Name, Server string
		X, Y              int32
		Region            int
	}
	Players map[string]struct {
		X, Y   int32
		Region int
	}
	Chat      []struct{ From, Name, Text string }
	RTTs      []float64
	Directory *[]struct {
		Name, Level, Host  string
		Players, Max, Port int
	}
}

const show = "window.openworld && window.openworld.state()"

// joined opens a tab that plays as name from (x, y) on client server
// server, and returns it once the gateway welcomed it.
func (w *world) joined(t *testing.T, b *browsertest.Browser, name string, x, y int32, server int) (*browsertest.Tab, pageState) {
	t.Helper()
	tab := b.Open(t, fmt.Sprintf("%s?name=%s&x=%d&y=%d&server=%d", w.pageURL, name, x, y, server))
	tab.Wait(name+" welcomed", "window.openworld && window.openworld.state().me !== null", show)
	var st pageState
	tab.Eval("window.openworld.state()", &st)
	return tab, st
}

// TestTwoTabs plays two players in two tabs, on different client servers:
// each sees the other, one moves and the other sees the move, a chat line
// crosses, and the page names the region's owner as the gateway chose it.
func TestTwoTabs(t *testing.T) {
	b := browsertest.Start(t, 1140, 780)
	w := startWorld(t)
	if len(w.cfg.Owners) != w.cfg.Regions || w.cfg.Regions != openworld.DefaultRegions {
		t.Fatalf("config: %d regions, %d owners", w.cfg.Regions, len(w.cfg.Owners))
	}

	alice, a := w.joined(t, b, "alice", 2000, 2000, 0)
	bob, bs := w.joined(t, b, "bob", 2040, 2040, 1)
	if a.Me.Server != "client-1" || bs.Me.Server != "client-2" {
		t.Fatalf("alice on %s, bob on %s: want client-1 and client-2", a.Me.Server, bs.Me.Server)
	}
	seen := func(ref string, x, y int32) string {
		return fmt.Sprintf("(p => p && p.x === %d && p.y === %d)(window.openworld.state().players[%q])", x, y, ref)
	}
	// Alice steps, so that bob, who joined last, has her position from a
	// move even if he arrived after her view was sent.
	alice.Eval("window.openworld.moveTo(2010, 2010)", nil)
	bob.Wait("bob sees alice", seen(a.Me.Ref, 2010, 2010), show)
	alice.Wait("alice sees bob", fmt.Sprintf("window.openworld.state().players[%q] !== undefined", bs.Me.Ref), show)

	alice.Eval("window.openworld.moveTo(2100, 2150)", nil)
	bob.Wait("bob sees alice's move", seen(a.Me.Ref, 2100, 2150), show)

	bob.Eval(`window.openworld.say("hello from bob"), true`, nil)
	alice.Wait("alice reads bob's chat", `window.openworld.state().chat.some(l => l.name === "bob" && l.text === "hello from bob")`, show)
	var st pageState
	bob.Eval(show, &st)
	if st.Directory != nil {
		t.Fatalf("bob lists %d game servers without a directory", len(*st.Directory))
	}

	// The owner the page draws is the gateway's choice.
	id, err := strconv.ParseUint(strings.TrimPrefix(a.Me.Ref, "client-1#"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	info, ok := w.gateways[0].Player(id)
	if !ok {
		t.Fatalf("client-1 does not hold alice (%s)", a.Me.Ref)
	}
	if want := w.cfg.Owners[info.Region]; info.Owner != want {
		t.Fatalf("alice's region %d: the gateway chose %s, the page shows %s", info.Region, info.Owner, want)
	}
}

// TestDirectoryPanel runs the server-directory example beside the open
// world: a page given its client server lists its game servers, live.
func TestDirectoryPanel(t *testing.T) {
	b := browsertest.Start(t, 1140, 780)
	w := startWorld(t)
	dir := clustertest.Load(t, "../../directory/cluster.yaml")
	dir.StartAll()
	dir.WaitLinked("client")
	dirURL := dir.Servers("client")[0].URL()

	ctx := testutil.Context(t)
	host := func(l directory.Listing) *client.Client {
		c, err := client.Dial(ctx, client.Options{URL: dirURL, Header: http.Header{"X-Directory-Token": {"dev-host-token"}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := directory.Announce(ctx, c, web.DefaultDirectoryApp, l); err != nil {
			t.Fatal(err)
		}
		return c
	}
	arena := host(directory.Listing{Name: "arena", Level: "dust", Players: 3, MaxPlayers: 8, GamePort: 27015})

	tab := b.Open(t, fmt.Sprintf("%s?name=carol&x=2050&y=2100&directory=%s", w.pageURL, url.QueryEscape(dirURL)))
	listed := func(names ...string) string {
		return fmt.Sprintf("(d => d && JSON.stringify(d.map(s => s.name)) === %q)(window.openworld.state().directory)", mustJSON(names))
	}
	tab.Wait("the directory lists arena", listed("arena"), show)
	var st pageState
	tab.Eval(show, &st)
	if s := (*st.Directory)[0]; s.Level != "dust" || s.Players != 3 || s.Max != 8 || s.Port != 27015 || s.Host != "127.0.0.1" {
		t.Fatalf("arena listed as %+v", s)
	}
	tab.Wait("the panel shown", `!document.getElementById("directory").hidden`, show)
	host(directory.Listing{Name: "harbor-eu", Level: "harbor", Players: 12, MaxPlayers: 16, GamePort: 27016})
	host(directory.Listing{Name: "temple", Level: "temple", MaxPlayers: 4, GamePort: 27017})
	tab.Wait("three servers listed", listed("arena", "harbor-eu", "temple"), show)
	if err := directory.SetPlayers(ctx, arena, web.DefaultDirectoryApp, 5, nil); err != nil {
		t.Fatal(err)
	}
	tab.Wait("arena's new player count", `window.openworld.state().directory.some(s => s.name === "arena" && s.players === 5)`, show)

	if *screenshot != "" {
		tab.Viewport(1140, 760)
		shoot(t, w, tab)
	}
	arena.Close()
	tab.Wait("arena gone with its connection", listed("harbor-eu", "temple"), show)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// shoot runs bots around the tab's player, moves it, and writes a PNG of
// the tab.
func shoot(t *testing.T, w *world, tab *browsertest.Tab) {
	ctx, cancel := context.WithCancel(testutil.Context(t))
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	var urls []string
	for _, s := range w.sys.Servers("client") {
		urls = append(urls, s.URL())
	}
	swarm := &bots.Swarm{URLs: urls, Players: 16, ChatEvery: 6 * time.Second, Area: 320}
	wg.Go(func() { swarm.Run(ctx, time.Second, func(bots.Progress) {}) })
	tab.Wait("bots near the player", "Object.keys(window.openworld.state().players).length >= 6", show)
	for i := range 10 {
		tab.Eval(fmt.Sprintf("window.openworld.moveTo(%d, %d)", 2050+8*i, 2100-5*i), nil)
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // chat lines and moves arrive
	tab.Eval(`window.openworld.say("anyone up for the arena?"), true`, nil)
	time.Sleep(time.Second)
	b := smallPNG(t, tab.Screenshot())
	if err := os.WriteFile(*screenshot, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", *screenshot, len(b))
}

// smallPNG re-encodes a screenshot with a palette of its 256 most common
// colours, which the page's flat colours fit, at a third of the size.
func smallPNG(t *testing.T, b []byte) []byte {
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[color.RGBA]int{}
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			counts[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	colors := slices.Collect(maps.Keys(counts))
	slices.SortFunc(colors, func(a, b color.RGBA) int { return counts[b] - counts[a] })
	pal := make(color.Palette, 0, 256)
	for _, c := range colors[:min(256, len(colors))] {
		pal = append(pal, c)
	}
	p := image.NewPaletted(r, pal)
	draw.Draw(p, r, img, r.Min, draw.Src)
	var out bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&out, p); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestMoveRoundTrip measures the round trip of a move (player → client
// server → world server → client server → player) from the page and from
// the Go Player of package openworld, one after the other on the same
// system, and logs both (go test -run TestMoveRoundTrip -v). It asserts
// nothing about speed.
func TestMoveRoundTrip(t *testing.T) {
	const n = 200
	const every = 25 * time.Millisecond // 40 moves/s, within cluster.yaml's rate of 50
	b := browsertest.Start(t, 800, 600)
	w := startWorld(t)
	tab, _ := w.joined(t, b, "timer", 2000, 2000, 0)
	tab.Eval(fmt.Sprintf(`(async () => {
		for (let i = 0; i < %d; i++) {
			window.openworld.moveTo(2000 + (i %% 50), 2000);
			await new Promise((r) => setTimeout(r, %d));
		}
		await new Promise((r) => setTimeout(r, 500));
		return true;
	})()`, n, every.Milliseconds()), nil)
	var ms []float64
	tab.Eval("window.openworld.state().rtts", &ms)
	if len(ms) == 0 {
		t.Fatal("the page measured no round trip")
	}
	page := make([]time.Duration, len(ms))
	for i, m := range ms {
		page[i] = time.Duration(m * float64(time.Millisecond))
	}

	var mu sync.Mutex
	var goRTT []time.Duration
	ctx := testutil.Context(t)
	p, err := openworld.Join(ctx, openworld.JoinOptions{
		URL: w.sys.Servers("client")[0].URL(), Name: "go-timer", Spawn: &openworld.Point{X: 2000, Y: 2000},
		OnRTT: func(d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			goRTT = append(goRTT, d)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range n {
		if err := p.Move(2000+int32(i%50), 2000); err != nil {
			t.Fatal(err)
		}
		time.Sleep(every)
	}
	testutil.WaitFor(t, "the Go player's round trips", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(goRTT) >= n*9/10
	})
	mu.Lock()
	defer mu.Unlock()
	t.Logf("move round trip, %d moves %s apart, on cluster.yaml: page (Chromium, TypeScript SDK) %s over the last %d; Go (openworld.Player) %s over %d",
		n, every, percentiles(page), len(page), percentiles(goRTT), len(goRTT))
}

// percentiles formats p50 and p90 of ds.
func percentiles(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[int(p*float64(len(s)-1))] }
	return fmt.Sprintf("p50 %s p90 %s", at(0.5).Round(time.Microsecond), at(0.9).Round(time.Microsecond))
}
