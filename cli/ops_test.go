package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudrift/cloudrift/protocol"
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

// POST /drain ends "run" by itself once the server has drained: a client
// server with a player gives it a Move, then (no other server to go to,
// the player stays) closes it after the drain timeout.
func TestRunEndsAfterPostDrain(t *testing.T) {
	file := writeFile(t, "drain.yaml", `system: draintest
secret: draintest-secret-0123456789
groups:
  - name: client
    visibility: external
    listen: "127.0.0.1:0"
    clients: {drainTimeout: 100ms}
`)
	c := start(t, "run", "-config", file, "-group", "client", "-ops", "127.0.0.1:0", "-log-level", "info")
	base := c.Match(t, &c.Stdout, opsPort)[1]
	m := c.Match(t, &c.Stdout, listening)
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+m[3]+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The welcome says the server holds the session: a drain that began
	// before would find no player to move, and only shut down.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, b, err := conn.ReadMessage(); err != nil {
		t.Fatal(err)
	} else if f, err := protocol.DecodeWS(b); err != nil || f.Kind != protocol.KindClientWelcome {
		t.Fatalf("first message %v %v, want the welcome", f.Kind, err)
	}
	resp, err := http.Post(base+"/drain", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /drain: %s", resp.Status)
	}
	var kinds []protocol.Kind
	for {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := conn.ReadMessage()
		if err != nil {
			break
		}
		f, err := protocol.DecodeWS(b)
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, f.Kind)
		if f.Kind == protocol.KindClose {
			var cl protocol.Close
			if err := cl.Decode(f.Payload); err != nil || cl.Reason != protocol.ReasonDraining {
				t.Errorf("close %+v %v, want Draining", cl, err)
			}
			break
		}
	}
	if !slices.Contains(kinds, protocol.KindClientMove) || kinds[len(kinds)-1] != protocol.KindClose {
		t.Errorf("the player received kinds %v, want a Move then a Close", kinds)
	}
	if code := c.Wait(t); code != 0 {
		t.Errorf("exit %d after the drain, want 0; stderr:\n%s", code, &c.Stderr)
	}
	if !strings.HasSuffix(c.Stdout.String(), "stopped\n") {
		t.Errorf("output does not end with stopped:\n%s", &c.Stdout)
	}
}
