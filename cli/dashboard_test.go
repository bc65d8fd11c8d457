package cli

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/dashboard"
	"github.com/cloudrift/cloudrift/internal/consultest"
	"github.com/cloudrift/cloudrift/internal/testutil"
)

var dashboardURL = regexp.MustCompile(`dashboard (?:of "\w+": )?(http://127\.0\.0\.1:\d+/)`)

// waitStates polls the dashboard at base until it shows want: the state
// of each server, and no other server.
func waitStates(t *testing.T, base string, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(testutil.Patience)
	for {
		var st dashboard.State
		_, body := httpGet(t, base+"state.json")
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("state.json: %v in %s", err, body)
		}
		got := map[string]string{}
		for _, s := range st.Servers {
			got[s.ID] = s.State
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard shows %v, want %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitDashboard polls the dashboard at base until it shows every server
// of the repository's system file, ready.
func waitDashboard(t *testing.T, base string) {
	t.Helper()
	sys, err := config.Load(repoFile)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, g := range sys.Groups {
		for i := 1; i <= g.Replicas; i++ {
			want[fmt.Sprintf("%s-%d", g.Name, i)] = dashboard.StateReady
		}
	}
	waitStates(t, base, want)
}

func TestDevAndDashboardServeThePage(t *testing.T) {
	dev := start(t, "dev", "-config", repoFile, "-interval", "1h", "-bots", "0", "-dashboard", "127.0.0.1:0")
	opsURL := dev.Match(t, &dev.Stdout, opsPort)[1]
	devPage := dev.Match(t, &dev.Stdout, dashboardURL)[1]
	dev.Match(t, &dev.Stdout, allUp)
	if code, body := httpGet(t, devPage); code != 200 || !strings.Contains(body, `<svg id="graph"`) {
		t.Fatalf("dev's dashboard page: %d\n%s", code, body)
	}
	waitDashboard(t, devPage)

	dash := start(t, "dashboard", "-config", repoFile, "-listen", "127.0.0.1:0", "-ops", opsURL, "-interval", "100ms")
	page := dash.Match(t, &dash.Stdout, dashboardURL)[1]
	waitDashboard(t, page)
	if code := dash.Stop(t); code != 0 {
		t.Errorf("dashboard: exit %d after cancel, want 0; stderr:\n%s", code, &dash.Stderr)
	}
	if code := dev.Stop(t); code != 0 {
		t.Errorf("dev: exit %d after cancel, want 0; stderr:\n%s", code, &dev.Stderr)
	}
}

func TestDashboardNeedsSomethingToPoll(t *testing.T) {
	code, _, stderr := runSync(t, "dashboard", "-config", repoFile)
	if code != exitUsage || !strings.Contains(stderr, "-ops") {
		t.Errorf("dashboard of an embedded-registry file without -ops: exit %d, stderr %q; want %d naming -ops", code, stderr, exitUsage)
	}
	code, _, stderr = runSync(t, "dashboard", "-config", repoFile, "-ops", "127.0.0.1:9100")
	if code != exitUsage || !strings.Contains(stderr, "want a URL") {
		t.Errorf("-ops without a scheme: exit %d, stderr %q; want %d", code, stderr, exitUsage)
	}
}

// TestDashboardWithConsul polls one server's operations port and finds
// another, which has none, in Consul: it is shown unmonitored, then down
// once it leaves.
func TestDashboardWithConsul(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	path := statusFile(t, agent.Addr(), "")
	core := start(t, "run", "-config", path, "-group", "core", "-id", "core-1", "-ops", "127.0.0.1:0", "-log-level", "disabled")
	coreOps := core.Match(t, &core.Stdout, opsPort)[1]
	edge := start(t, "run", "-config", path, "-group", "edge", "-id", "edge-1", "-ops", "off", "-log-level", "disabled")
	edge.Match(t, &edge.Stdout, listening)

	dash := start(t, "dashboard", "-config", path, "-listen", "127.0.0.1:0", "-ops", coreOps, "-interval", "100ms")
	page := dash.Match(t, &dash.Stdout, dashboardURL)[1]
	waitStates(t, page, map[string]string{"core-1": dashboard.StateReady, "edge-1": dashboard.StateUnmonitored})
	if code := edge.Stop(t); code != 0 {
		t.Errorf("edge: exit %d; stderr:\n%s", code, &edge.Stderr)
	}
	waitStates(t, page, map[string]string{"core-1": dashboard.StateReady, "edge-1": dashboard.StateDown})
	if code := dash.Stop(t); code != 0 {
		t.Errorf("dashboard: exit %d; stderr:\n%s", code, &dash.Stderr)
	}
	if code := core.Stop(t); code != 0 {
		t.Errorf("core: exit %d; stderr:\n%s", code, &core.Stderr)
	}
}
