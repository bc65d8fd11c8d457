package dashboard_test

import (
	"fmt"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/dashboard"
	"github.com/cloudrift/cloudrift/internal/browsertest"
	"github.com/cloudrift/cloudrift/ops"
)

const systemYAML = `
system: dashdemo
secret: a-secret-of-sufficient-length
groups:
  - {name: front, visibility: external, replicas: 2, connectsTo: [world]}
  - {name: world, visibility: internal, replicas: 2}
`

// turnRed bounds how long a killed server may look alive on the page:
// the dashboard polls every 200ms here, the page every second.
const turnRed = 5 * time.Second

// serveOps serves srv's operations port until the test ends or the
// returned stop is called, as a process's port lives and dies with it.
func serveOps(t *testing.T, srv *clustertest.Server) (url string, stop func()) {
	t.Helper()
	s := httptest.NewServer(ops.NewHandler(ops.Options{}, srv.Cluster()))
	t.Cleanup(s.Close)
	return s.URL, s.Close
}

func TestPageFollowsTheSystem(t *testing.T) {
	b := browsertest.Start(t, 1000, 720) // skips without Chromium
	sys := clustertest.Start(t, systemYAML)
	sys.WaitLinked("front")
	stops := map[string]func(){}
	var targets []string
	for _, g := range []string{"front", "world"} {
		for _, srv := range sys.Servers(g) {
			u, stop := serveOps(t, srv)
			targets = append(targets, u)
			stops[srv.ID()] = stop
		}
	}
	conn := sys.Hub().Connector()
	t.Cleanup(func() { conn.Close() })
	page := serveDashboard(t, dashboard.Options{System: sys.Config(), Targets: targets, Registry: conn, Interval: 200 * time.Millisecond})

	sys.Server("front-1").Dial() // one player
	tab := b.Open(t, page)
	const show = `Array.from(document.querySelectorAll("[data-server]")).map(e => e.dataset.server + "=" + e.dataset.state).join(" ")`
	state := func(id, want string) string {
		return fmt.Sprintf(`document.querySelector('[data-server=%q]')?.dataset.state === %q`, id, want)
	}
	for _, id := range []string{"front-1", "front-2", "world-1", "world-2"} {
		tab.Wait(id+" ready", state(id, "ready"), show)
	}
	tab.Wait("the four servers' links", `document.querySelectorAll("#graph .link.linked").length === 4`,
		`document.querySelector("#graph").outerHTML`)
	tab.Wait("front-1's player", `document.querySelector('[data-server="front-1"]').textContent.includes("1 players")`, show)

	sys.Server("world-2").Kill()
	stops["world-2"]()
	killed := time.Now()
	tab.Wait("world-2 down", state("world-2", "down"), show)
	if d := time.Since(killed); d > turnRed {
		t.Errorf("world-2 turned red after %s, want within %s", d, turnRed)
	}
	tab.Wait("the node of world-2 red", `document.querySelector('[data-node="world-2"]').classList.contains("state-down")`, show)
	tab.Wait("the closes of world-2's links", `document.querySelectorAll("#events tbody tr td").length >= 5 && document.querySelector("#events tbody").textContent.includes("link closed")`,
		`document.querySelector("#events").outerHTML`)

	added := sys.AddReplica("world")
	tab.Wait(added.ID()+" on the page", fmt.Sprintf(`!!document.querySelector('[data-server=%q]')`, added.ID()), show)
	sys.WaitLinked("front")
	tab.Wait(added.ID()+" linked", fmt.Sprintf(`document.querySelectorAll('#graph .link.linked[data-link*=%q]').length === 2`, added.ID()),
		`document.querySelector("#graph").outerHTML`)

	// DASHBOARD_SCREENSHOT=file.png saves the page as the test left it.
	if path := os.Getenv("DASHBOARD_SCREENSHOT"); path != "" {
		tab.Viewport(900, 600)
		time.Sleep(1500 * time.Millisecond) // a redraw at the new size
		png := tab.Screenshot()
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", path, len(png))
	}
}
