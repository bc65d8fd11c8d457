package ops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/ops"
)

// needTool returns the path of a program, skipping the test without it
// (failing under CI=true, where the test command installs it).
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found: install the Debian package %q", name, pkg)
		}
		t.Skipf("%s not found (Debian package %q)", name, pkg)
	}
	return p
}

// TestPrometheusScrapesServers runs a real Prometheus against the
// operations ports of a small system and reads cloudrift's series back
// through its query API.
func TestPrometheusScrapesServers(t *testing.T) {
	bin := needTool(t, "prometheus", "prometheus")
	sys := startRelay(t)
	var targets []string
	for _, id := range []string{"lobby-1", "world-1"} {
		l := serve(t, ops.NewHandler(ops.Options{}, sys.Server(id).Cluster()))
		targets = append(targets, strconv.Quote(l.Addr().String()))
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("global: {scrape_interval: 1s, scrape_timeout: 1s}\n"+
		"scrape_configs:\n  - job_name: cloudrift\n    static_configs:\n      - targets: [%s]\n", strings.Join(targets, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	api := startPrometheus(t, bin, dir)

	// Series appear after the first scrapes.
	up := `sum(up{job="cloudrift"})`
	waitQuery(t, api, up, "both targets up", func(v float64) bool { return v == 2 })
	msgs := `cloudrift_client_messages_received_total{group="lobby"}`
	before := waitQuery(t, api, msgs, "the lobby's client counter scraped", func(float64) bool { return true })

	const n = 20
	exchange(t, sys, n)
	waitQuery(t, api, msgs, fmt.Sprintf("the client counter up by %d", n), func(v float64) bool { return v >= before+n })
	waitQuery(t, api, `cloudrift_link_messages_received_total{group="world",peer_group="lobby"}`,
		"the world's link counter up", func(v float64) bool { return v >= n })
	waitQuery(t, api, `cloudrift_links_up{group="lobby",peer_group="world"}`, "the lobby's link up", func(v float64) bool { return v == 1 })
	waitQuery(t, api, `count(go_goroutines{job="cloudrift"})`, "Go collector series", func(v float64) bool { return v == 2 })
}

// startPrometheus runs Prometheus with dir's prometheus.yml on a free
// loopback port and returns its base URL once it is ready. It is killed
// when the test ends.
func startPrometheus(t *testing.T, bin, dir string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel() // kills the process
		<-exited
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		select {
		case <-exited:
			t.Fatalf("prometheus exited before it was ready")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 30s (last: %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitQuery evaluates the instant query q until it returns one sample
// whose value satisfies ok, within 30 s, and returns that value.
func waitQuery(t *testing.T, api, q, what string, ok func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		v, n, err := query(api, q)
		switch {
		case err != nil:
			last = err.Error()
		case n != 1:
			last = fmt.Sprintf("%d samples", n)
		case ok(v):
			return v
		default:
			last = fmt.Sprintf("value %v", v)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: %s: %s after 30s", what, q, last)
	return 0
}

// query runs an instant query and returns the first sample's value and the
// number of samples.
func query(api, q string) (float64, int, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(api + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, 0, err
	}
	if body.Status != "success" {
		return 0, 0, fmt.Errorf("query failed: %s", body.Error)
	}
	if len(body.Data.Result) == 0 {
		return 0, 0, nil
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	return v, len(body.Data.Result), err
}

// TestDeployedPrometheusFilesAreValid checks deploy/prometheus.yml and its
// rules with promtool, which comes with Prometheus.
func TestDeployedPrometheusFilesAreValid(t *testing.T) {
	promtool := needTool(t, "promtool", "prometheus")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, promtool, "check", "config", filepath.Join("..", "deploy", "prometheus.yml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), " rules found") {
		t.Errorf("promtool did not read the rules:\n%s", out)
	}
}
