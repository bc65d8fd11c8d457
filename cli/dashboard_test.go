package cli

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/dashboard"
	"github.com/cloudrift/cloudrift/internal/testutil"
)

var dashboardURL = regexp.MustCompile(`dashboard (?:of "\w+": )?(http://127\.0\.0\.1:\d+/)`)

// waitDashboard polls the dashboard at base until it shows want servers,
// every one ready.
func waitDashboard(t *testing.T, base string, want int) {
	t.Helper()
	var st dashboard.State
	deadline := time.Now().Add(testutil.Patience)
	for {
		_, body := httpGet(t, base+"state.json")
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("state.json: %v in %s", err, body)
		}
		ready := 0
		for _, s := range st.Servers {
			if s.State == dashboard.StateReady {
				ready++
			}
		}
		if len(st.Servers) == want && ready == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard shows %d servers, %d ready, want %d ready: %+v", len(st.Servers), ready, want, st.Servers)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDevAndDashboardServeThePage(t *testing.T) {
	servers, _ := expected(t, repoFile)
	dev := start(t, "dev", "-config", repoFile, "-interval", "1h", "-bots", "0", "-dashboard", "127.0.0.1:0")
	opsURL := dev.Match(t, &dev.Stdout, opsPort)[1]
	devPage := dev.Match(t, &dev.Stdout, dashboardURL)[1]
	dev.Match(t, &dev.Stdout, allUp)
	if code, body := httpGet(t, devPage); code != 200 || !strings.Contains(body, `<svg id="graph"`) {
		t.Fatalf("dev's dashboard page: %d\n%s", code, body)
	}
	waitDashboard(t, devPage, servers)

	dash := start(t, "dashboard", "-config", repoFile, "-listen", "127.0.0.1:0", "-ops", opsURL, "-interval", "100ms")
	page := dash.Match(t, &dash.Stdout, dashboardURL)[1]
	waitDashboard(t, page, servers)
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
