package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var opsPort = regexp.MustCompile(`operations port (http://127\.0\.0\.1:\d+) `)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRunServesTheOperationsPort(t *testing.T) {
	t.Setenv("CLOUDRIFT_OPS", "127.0.0.1:0")
	c := start(t, "run", "-config", repoFile, "-group", "world", "-log-level", "disabled")
	base := c.Match(t, &c.Stdout, opsPort)[1]
	if code, body := httpGet(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz: %d %q", code, body)
	}
	// world connects to the cloud group, which nobody runs here: the
	// registry lists none, so the server is ready.
	if code, body := httpGet(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz: %d %q", code, body)
	}
	if code, body := httpGet(t, base+"/metrics"); code != 200 || !strings.Contains(body, `cloudrift_registry_errors_total{group="world"} 0`) {
		t.Errorf("/metrics: %d, no registry errors series", code)
	}
	if code := c.Stop(t); code != 0 {
		t.Errorf("exit %d after cancel, want 0; stderr:\n%s", code, &c.Stderr)
	}
}

func TestRunOpsOff(t *testing.T) {
	c := start(t, "run", "-config", repoFile, "-group", "world", "-ops", "off", "-log-level", "disabled")
	c.Match(t, &c.Stdout, listening)
	if code := c.Stop(t); code != 0 {
		t.Errorf("exit %d after cancel, want 0", code)
	}
	if strings.Contains(c.Stdout.String(), "operations port") {
		t.Errorf("-ops off still printed an operations port:\n%s", &c.Stdout)
	}
}

func TestDevServesEveryServerOnOneOperationsPort(t *testing.T) {
	servers, _ := expected(t, repoFile)
	c := start(t, "dev", "-config", repoFile, "-interval", "1h")
	base := c.Match(t, &c.Stdout, opsPort)[1]
	c.Match(t, &c.Stdout, allUp)
	code, body := httpGet(t, base+"/status")
	var all []struct {
		ID    string `json:"id"`
		Ready bool   `json:"ready"`
	}
	if err := json.Unmarshal([]byte(body), &all); code != 200 || err != nil || len(all) != servers {
		t.Fatalf("/status: %d %v, %d servers, want %d", code, err, len(all), servers)
	}
	if code, body := httpGet(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz with every server up: %d %q", code, body)
	}
	if code, _ := httpGet(t, base+"/debug/pprof/"); code != 200 {
		t.Errorf("dev's pprof from loopback: %d", code)
	}
	if code := c.Stop(t); code != 0 {
		t.Errorf("exit %d after cancel, want 0; stderr:\n%s", code, &c.Stderr)
	}
}
