package bots

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
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
// background; stop cancels it and returns its exit code.
func command(t *testing.T, args ...string) (out, errOut *testutil.Buffer, done <-chan int, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut = &testutil.Buffer{}, &testutil.Buffer{}
	ch := make(chan int, 1) // for waitOutput, which may take the code
	finished := make(chan struct{})
	var result int
	go func() {
		result = cli.Run(ctx, args, out, errOut, Options()...)
		ch <- result
		close(finished)
	}()
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case <-finished:
				code = result
			case <-time.After(20 * time.Second):
				t.Errorf("%v did not return within 20 s of cancellation", args)
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return out, errOut, ch, stop
}

// waitOutput polls out until re matches it or 30 s pass, and returns the
// submatches.
func waitOutput(t *testing.T, out *testutil.Buffer, re *regexp.Regexp, done <-chan int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m
		}
		select {
		case code := <-done:
			t.Fatalf("command ended with %d before printing %q; output:\n%s", code, re, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q within 30 s; output:\n%s", re, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	out, errOut, done, stop := command(t, "dev", "-config", repoFile, "-interval", "100ms", "-bots", "3", "-log-level", "error")
	waitOutput(t, out, regexp.MustCompile(`(?m)^  bots: `+progressLine("3").String()), done)

	var urls []string
	for _, m := range gameClients.FindAllStringSubmatch(out.String(), -1) {
		urls = append(urls, m[1])
	}
	if len(urls) < 2 {
		t.Fatalf("dev printed %d client servers, want the 2 of cluster.yaml:\n%s", len(urls), out)
	}

	args := []string{"bots", "-n", "4", "-duration", "0", "-interval", "100ms", "-move-every", "20ms", "-chat-every", "50ms"}
	for _, u := range urls {
		args = append(args, "-url", u)
	}
	bout, berr, bdone, bstop := command(t, args...)
	waitOutput(t, bout, regexp.MustCompile(`(?m)^4 players on 2 client servers, until interrupted$`), bdone)
	waitOutput(t, bout, progressLine("4"), bdone)
	if code := bstop(); code != 0 {
		t.Errorf("bots: exit %d; stderr:\n%s", code, berr)
	}
	summary := regexp.MustCompile(`done after \S+: (\d+) joins \(0 failed\), 0 drops, (\d+) sent, (\d+) received \((\d+) chat lines\)\nround trips: \d+, p50`)
	m := summary.FindStringSubmatch(bout.String())
	if m == nil {
		t.Fatalf("no summary in:\n%s", bout)
	}
	if m[1] != "4" || m[2] == "0" || m[3] == "0" {
		t.Errorf("summary %q: want 4 joins, messages sent and received", m[0])
	}

	if code := stop(); code != 0 {
		t.Errorf("dev: exit %d; stderr:\n%s", code, errOut)
	}
	if !strings.HasSuffix(out.String(), "stopped\n") {
		t.Errorf("dev output does not end with stopped:\n%s", out)
	}
}

func TestDevWithoutBots(t *testing.T) {
	out, errOut, done, stop := command(t, "dev", "-config", repoFile, "-interval", "50ms", "-bots", "0", "-log-level", "error")
	// Two tables after the all-up line, and no bots line.
	waitOutput(t, out, regexp.MustCompile(`(?s)all \d+ servers up.*GROUP.*GROUP`), done)
	if code := stop(); code != 0 {
		t.Errorf("exit %d; stderr:\n%s", code, errOut)
	}
	if strings.Contains(out.String(), "bots:") {
		t.Errorf("dev -bots 0 started bots:\n%s", out)
	}
}

func TestBotsCommandUsage(t *testing.T) {
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"bots"}, 2, "-url is required"},
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
