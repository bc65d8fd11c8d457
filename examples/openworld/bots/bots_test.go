package bots

import (
	"context"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/cli"
	"github.com/cloudrift/cloudrift/internal/testutil"
	_ "github.com/cloudrift/cloudrift/plugins/cloudmemory" // the cloud group of cluster.yaml
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// repoFile is the repository's system file, relative to this package.
const repoFile = "../../../cluster.yaml"

// command runs a command line of a binary with the bots' options in the
// background; the test's cleanup stops it.
func command(t *testing.T, args ...string) *testutil.Command {
	t.Helper()
	return testutil.Start(t, func(ctx context.Context, stdout, stderr io.Writer) int {
		return cli.Run(ctx, args, stdout, stderr, Options()...)
	})
}

// progressLine matches a progress line with every player connected and
// round trips measured.
func progressLine(players string) *regexp.Regexp {
	return regexp.MustCompile(`players ` + players + `/` + players + `  sent \S+/s  received \S+/s  rtt p50 [\d.]+ms p90 [\d.]+ms p99 [\d.]+ms max [\d.]+ms`)
}

var gameClients = regexp.MustCompile(`game clients: (ws://\S+)`)

// TestDevStartsBotsAndBotsCommandRuns runs "dev" on the repository's
// cluster.yaml with the bots' options: its bots play and report; then the
// "bots" command plays against the same system until interrupted.
func TestDevStartsBotsAndBotsCommandRuns(t *testing.T) {
	dev := command(t, "dev", "-config", repoFile, "-interval", "100ms", "-bots", "3", "-log-level", "error")
	dev.Match(t, &dev.Stdout, regexp.MustCompile(`(?m)^  bots: `+progressLine("3").String()))

	var urls []string
	for _, m := range gameClients.FindAllStringSubmatch(dev.Stdout.String(), -1) {
		urls = append(urls, m[1])
	}
	if len(urls) < 2 {
		t.Fatalf("dev printed %d client servers, want the 2 of cluster.yaml:\n%s", len(urls), &dev.Stdout)
	}

	args := []string{"bots", "-n", "4", "-duration", "0", "-interval", "100ms", "-move-every", "20ms", "-chat-every", "50ms"}
	for _, u := range urls {
		args = append(args, "-url", u)
	}
	bots := command(t, args...)
	bots.Match(t, &bots.Stdout, regexp.MustCompile(`(?m)^4 players on 2 client servers, until interrupted$`))
	bots.Match(t, &bots.Stdout, progressLine("4"))
	if code := bots.Stop(t); code != 0 {
		t.Errorf("bots: exit %d; stderr:\n%s", code, &bots.Stderr)
	}
	summary := regexp.MustCompile(`done after \S+: (\d+) joins \(0 failed\), 0 drops, 0 moves, (\d+) sent, (\d+) received \((\d+) chat lines\)\nround trips: \d+, p50`)
	m := summary.FindStringSubmatch(bots.Stdout.String())
	if m == nil {
		t.Fatalf("no summary in:\n%s", &bots.Stdout)
	}
	if m[1] != "4" || m[2] == "0" || m[3] == "0" {
		t.Errorf("summary %q: want 4 joins, messages sent and received", m[0])
	}

	if code := dev.Stop(t); code != 0 {
		t.Errorf("dev: exit %d; stderr:\n%s", code, &dev.Stderr)
	}
	if !strings.HasSuffix(dev.Stdout.String(), "stopped\n") {
		t.Errorf("dev output does not end with stopped:\n%s", &dev.Stdout)
	}
}

func TestDevWithoutBots(t *testing.T) {
	dev := command(t, "dev", "-config", repoFile, "-interval", "50ms", "-bots", "0", "-log-level", "error")
	// Two tables after the all-up line, and no bots line.
	dev.Match(t, &dev.Stdout, regexp.MustCompile(`(?s)all \d+ servers up.*GROUP.*GROUP`))
	if code := dev.Stop(t); code != 0 {
		t.Errorf("exit %d; stderr:\n%s", code, &dev.Stderr)
	}
	if strings.Contains(dev.Stdout.String(), "bots:") {
		t.Errorf("dev -bots 0 started bots:\n%s", &dev.Stdout)
	}
}

func TestBotsCommandUsage(t *testing.T) {
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"bots"}, 2, "-url or -directory is required"},
		{[]string{"bots", "-directory", "ws://127.0.0.1:1/servers"}, 2, "want http(s)://"},
		{[]string{"bots", "-url", "ws://127.0.0.1:1/", "-n", "0"}, 2, "-n 0"},
		{[]string{"bots", "-url", "http://127.0.0.1:1/"}, 2, "want ws://"},
		{[]string{"bots", "-url", "ws://127.0.0.1:1/", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"bots", "-h"}, 0, "round trips"},
		// Nobody listens: every join fails, and the run says so.
		{[]string{"bots", "-url", "ws://127.0.0.1:1/", "-n", "1", "-duration", "300ms"}, 1, "no player could join"},
	} {
		var out, errOut testutil.Buffer
		code := cli.Run(context.Background(), c.args, &out, &errOut, Options()...)
		if code != c.code || !strings.Contains(errOut.String(), c.stderr) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", c.args, code, errOut.String(), c.code, c.stderr)
		}
	}
	var out, errOut testutil.Buffer
	if code := cli.Run(context.Background(), []string{"help"}, &out, &errOut, Options()...); code != 0 || !strings.Contains(out.String(), "  bots ") {
		t.Errorf("help: exit %d, stdout:\n%s", code, &out)
	}
}

func TestSwarmSettings(t *testing.T) {
	for _, s := range []Swarm{
		{},
		{URLs: []string{"ws://x/"}, Players: -1},
		{URLs: []string{"ws://x/"}, Players: MaxPlayers + 1},
		{URLs: []string{"ws://x/"}, MoveEvery: time.Microsecond},
		{URLs: []string{"ws://x/"}, Area: -4},
		{URLs: []string{"x:1"}},
	} {
		if _, err := s.Run(context.Background(), 0, nil); !errors.Is(err, ErrBadSwarm) {
			t.Errorf("%+v: %v, want ErrBadSwarm", s, err)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 {
		t.Error("empty histogram has a median")
	}
	// 1ms to 100ms, one sample each.
	for i := 1; i <= 100; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.9, 90 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}} {
		got := h.quantile(c.q)
		if got < c.want || float64(got) > 1.051*float64(c.want) {
			t.Errorf("quantile(%v) = %s, want %s to 5%% above", c.q, got, c.want)
		}
	}
	s := h.summary()
	if s.Samples != 100 || s.Max != 100*time.Millisecond || s.P50 > s.P90 || s.P90 > s.P99 || s.P99 > s.Max {
		t.Errorf("summary %+v", s)
	}
	// Below the first bucket and beyond the last, without a panic.
	h.add(0)
	h.add(1000 * time.Hour)
	if got := h.quantile(1); got != 1000*time.Hour {
		t.Errorf("max quantile %s", got)
	}

	var r recorder
	r.add(time.Millisecond)
	if s := r.cut(); s.Samples != 1 {
		t.Errorf("first period: %+v", s)
	}
	r.add(2 * time.Millisecond)
	r.add(3 * time.Millisecond)
	if s := r.cut(); s.Samples != 2 || s.Max != 3*time.Millisecond {
		t.Errorf("second period: %+v", s)
	}
	if s := r.overall(); s.Samples != 3 {
		t.Errorf("overall: %+v", s)
	}
}
