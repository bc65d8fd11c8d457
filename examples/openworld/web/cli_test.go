package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/cloudrift/cloudrift/cli"
	"github.com/cloudrift/cloudrift/examples/openworld"
	"github.com/cloudrift/cloudrift/examples/openworld/web"
	"github.com/cloudrift/cloudrift/internal/testutil"
)

// TestWebCommand serves the page with the web command and reads it back
// over HTTP: the page, the embedded SDK, and the configuration with the
// owners of cluster.yaml's regions.
func TestWebCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut testutil.Buffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, []string{"web", "-addr", "127.0.0.1:0", "-url", "ws://127.0.0.1:1/,ws://127.0.0.1:2/",
			"-config", "../../../cluster.yaml", "-directory", "ws://127.0.0.1:3/"}, &out, &errOut, web.Options()...)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("web exited %d: %s", code, errOut.String())
		}
	}()
	addr := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`)
	testutil.WaitFor(t, "the web command's address", func() bool { return addr.MatchString(out.String()) })
	base := addr.FindString(out.String())

	get := func(path string) (string, string) {
		t.Helper()
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %v", path, res.Status, err)
		}
		return string(b), res.Header.Get("Content-Type")
	}
	if page, _ := get(""); !strings.Contains(page, `src="app.js"`) {
		t.Fatalf("the page: %.200s", page)
	}
	if _, typ := get("sdk/index.js"); !strings.HasPrefix(typ, "text/javascript") {
		t.Fatalf("sdk/index.js served as %q", typ)
	}
	body, _ := get("config.json")
	var cfg web.Config
	if err := json.Unmarshal([]byte(body), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.URLs) != 2 || cfg.Regions != openworld.DefaultRegions || len(cfg.Owners) != cfg.Regions ||
		cfg.MapSize != openworld.MapSize || cfg.Directory != "ws://127.0.0.1:3/" || cfg.DirectoryApp != web.DefaultDirectoryApp {
		t.Fatalf("config: %s", body)
	}
	seen := map[string]int{}
	for _, o := range cfg.Owners {
		seen[o]++
	}
	if len(seen) != 3 || seen["world-1"] == 0 || seen["world-2"] == 0 || seen["world-3"] == 0 {
		t.Fatalf("owners %v: want the regions spread over world-1 to world-3", seen)
	}
}

func TestWebCommandUsage(t *testing.T) {
	var out, errOut testutil.Buffer
	if code := cli.Run(context.Background(), []string{"web"}, &out, &errOut, web.Options()...); code != 2 {
		t.Fatalf("web without -url exited %d, want 2: %s", code, errOut.String())
	}
}
