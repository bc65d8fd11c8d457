package churntest

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/internal/testutil"
)

// Phases of every scenario. They bound the load in time; none is an
// expected duration that a test asserts.
const (
	warmUp = 2 * time.Second // load before the event
	hold   = 6 * time.Second // load after the event's action returned, at least
	steady = time.Second     // then until every Get was consistent for this long
)

// EnvFigures names the environment variable that, set to a file path,
// makes TestMain append a Markdown table of every scenario's figures to
// that file.
const EnvFigures = "CLOUDRIFT_CHURN_FIGURES"

// scenario is one event under load.
type scenario struct {
	name string
	// event takes the system through the event and returns when its
	// action is over (a restarted process started, a stopped one
	// continued).
	event func()
}

// figure is one scenario's measure, for the table.
type figure struct {
	harness, name string
	f             Figures
	window        time.Duration
}

var (
	figMu   sync.Mutex
	figures []figure
)

// runScenario runs load through warm-up, the event and the hold, then
// checks the invariants: none broken during the run, the cloud memory
// settles to exactly the rows of the connected uploaders, every View
// equals a fresh Get. linkClosures returns the links closed because the
// registry dropped a peer since a time, as "server -> peer" strings.
func runScenario(t *testing.T, harness string, load *Load, check *Checker, sc scenario,
	linkClosures func(since time.Time) []string) {
	t.Helper()
	load.Start()
	defer load.Stop()
	time.Sleep(warmUp)
	t0 := time.Now()
	if sc.event != nil {
		sc.event()
	}
	time.Sleep(hold)
	// Keep the load on until every Get has been consistent for steady,
	// so that the figures see the end of the disturbance.
	for deadline := time.Now().Add(testutil.Patience); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if f := check.Figures(t0, time.Now()); !f.Unsettled && time.Since(t0.Add(f.Consistent)) >= steady {
			break
		}
	}
	t1 := time.Now()
	f := check.Figures(t0, t1)
	load.Quiesce()
	_, err := load.Settle(time.Now().Add(testutil.Patience))
	if err != nil {
		t.Errorf("%s: not settled within %v: %v", sc.name, testutil.Patience, err)
	}
	load.Stop()
	time.Sleep(Margin) // let pending observations be judged
	vs := check.Violations()
	for i, v := range vs {
		if i == 20 {
			t.Errorf("... and %d more violations", len(vs)-i)
			break
		}
		t.Error(v)
	}
	for _, l := range linkClosures(t0.Add(-warmUp)) {
		t.Errorf("link closed by a registry event between live servers: %s", l)
	}
	t.Logf("%s: %d Gets during %v: %d partial, %d failed (%.1f%%), p99 %s; consistent again after %v (still inconsistent at the end: %v)",
		sc.name, f.Gets, t1.Sub(t0).Round(time.Millisecond), f.Partial, f.Failed, 100*f.PartialShare(), ms(f.P99),
		f.Consistent.Round(time.Millisecond), f.Unsettled)
	figMu.Lock()
	figures = append(figures, figure{harness: harness, name: sc.name, f: f, window: t1.Sub(t0)})
	figMu.Unlock()
}

// ms formats d in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// writeFigures appends the table of figures to the file EnvFigures names.
func writeFigures() error {
	path := os.Getenv(EnvFigures)
	if path == "" || len(figures) == 0 {
		return nil
	}
	sort.SliceStable(figures, func(i, j int) bool { return figures[i].harness < figures[j].harness })
	var b strings.Builder
	fmt.Fprintf(&b, "| harness | event | Gets | Partial or failed | Get p50 | Get p99 | consistent again after |\n|---|---|---|---|---|---|---|\n")
	for _, g := range figures {
		again := g.f.Consistent.Round(10 * time.Millisecond).String()
		if g.f.Unsettled {
			again = "> " + g.window.Round(100*time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d (%.1f%%) | %s | %s | %s |\n", g.harness, g.name, g.f.Gets,
			g.f.Partial+g.f.Failed, 100*g.f.PartialShare(), ms(g.f.P50), ms(g.f.P99), again)
	}
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer fh.Close()
	_, err = fh.WriteString(b.String())
	return err
}
