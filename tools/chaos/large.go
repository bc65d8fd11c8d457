package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/examples/openworld/bots"
	"github.com/cloudrift/cloudrift/internal/backoff"
)

// LargeOptions configure a large run (-large): the example system scaled
// out, and open-world bots ramped up to a level and held there. The zero
// value of each field is a usable default.
type LargeOptions struct {
	// Replicas by group; a group left out keeps its count from the
	// system file. Nil means 4 client, 20 world, 1 social, 10 cloud.
	Replicas map[string]int
	// Bots are the levels tried in order until one holds; nil means
	// 2000, 1000, 500.
	Bots []int
	// Ramp is how long the bots of a level take to join (in ten steps);
	// Hold how long they then stay. Zero means 60 s each.
	Ramp, Hold time.Duration
	// MoveEvery is how often each bot moves. Zero means 250 ms.
	MoveEvery time.Duration
	// Settle bounds how long the scaled system may take to be passing
	// and linked. Zero means 5 minutes.
	Settle time.Duration
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any)
}

func (o LargeOptions) withDefaults() LargeOptions {
	if o.Replicas == nil {
		o.Replicas = map[string]int{"client": 4, "world": 20, "social": 1, "cloud": 10}
	}
	if len(o.Bots) == 0 {
		o.Bots = []int{2000, 1000, 500}
	}
	if o.Ramp <= 0 {
		o.Ramp = time.Minute
	}
	if o.Hold <= 0 {
		o.Hold = time.Minute
	}
	if o.MoveEvery <= 0 {
		o.MoveEvery = 250 * time.Millisecond
	}
	if o.Settle <= 0 {
		o.Settle = 5 * time.Minute
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	return o
}

// rampSteps is how many swarms a level's bots are split into, started
// evenly over the ramp.
const rampSteps = 10

// reportEvery is the period of the swarms' figures.
const reportEvery = 5 * time.Second

// heldShare is the share of a level's bots that must be connected at the
// end of the hold for the level to have held.
const heldShare = 0.99

// levelStats are the figures of one level of bots, taken over its hold.
type levelStats struct {
	bots                 int
	connected            int     // at the end of the hold
	sentRate, recvRate   float64 // messages per second, all bots together
	p50, p99             time.Duration
	samples              uint64
	joinErrors, drops    uint64 // over the ramp and the hold
	settled              string // "" when every server was passing and linked at the end of the hold
	mem                  []groupUsage
	loadAvg              string // the host's /proc/loadavg at the end of the hold
	failed               string // why the level did not hold; "" when it did
	hostHeapMiB, hostGor int    // the bots' process
}

// groupUsage summarises the containers of one group from docker stats.
type groupUsage struct {
	group         string
	n             int
	min, med, max float64 // memory, MiB
	cpu           float64 // CPU %, summed over the group
}

// runLarge builds the images, starts the system scaled to o.Replicas,
// and tries each level of bots until one holds. It returns the figures
// of every level tried and the shape the system had. Everything it
// started is removed before it returns.
func runLarge(ctx context.Context, root string, o LargeOptions) ([]*levelStats, string, error) {
	o = o.withDefaults()
	sys, err := newSystem(root, o.Log)
	if err != nil {
		return nil, "", err
	}
	defer sys.cleanup()
	start := time.Now()
	o.Log("building images")
	if err := sys.build(ctx); err != nil {
		return nil, "", err
	}
	o.Log("images built in %v; starting %s", since(start), sys.Name)
	if err := sys.up(ctx); err != nil {
		return nil, "", err
	}
	args := []string{"up", "-d", "--no-recreate"}
	for _, g := range sys.sys.Groups {
		if n, ok := o.Replicas[g.Name]; ok {
			sys.want[g.Name] = n
		}
		args = append(args, "--scale", fmt.Sprintf("%s=%d", g.Name, sys.want[g.Name]))
	}
	start = time.Now()
	o.Log("scaling to %s", sys.shape())
	if _, err := sys.Compose(ctx, args...); err != nil {
		return nil, sys.shape(), err
	}
	if err := waitSettled(ctx, sys, o.Settle); err != nil {
		return nil, sys.shape(), err
	}
	o.Log("every server passing and linked %v after scaling", since(start))
	urlsBy, err := sys.clientURLs(ctx)
	if err != nil {
		return nil, sys.shape(), err
	}
	var urls []string
	for _, u := range urlsBy {
		urls = append(urls, u)
	}
	slices.Sort(urls)

	var levels []*levelStats
	for _, n := range o.Bots {
		lv := runLevel(ctx, sys, urls, n, o)
		levels = append(levels, lv)
		if ctx.Err() != nil {
			return levels, sys.shape(), ctx.Err()
		}
		if lv.failed == "" {
			break
		}
		o.Log("level %d did not hold: %s", n, lv.failed)
		// The servers let the last level's connections go before the next.
		backoff.Sleep(ctx, 15*time.Second)
	}
	return levels, sys.shape(), nil
}

// waitSettled waits until every server is passing in Consul and linked.
func waitSettled(ctx context.Context, sys *system, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		missing, err := sys.settled(ctx)
		if err != nil || missing == "" {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not passing and linked within %v: %s (server logs: %s)", bound, missing, sys.saveLogs(ctx))
		}
		sys.log("  waiting: %s", missing)
		if !backoff.Sleep(ctx, 2*time.Second) {
			return ctx.Err()
		}
	}
}

// swarmReport is one report of one of a level's swarms.
type swarmReport struct {
	swarm int
	at    time.Time
	p     bots.Progress
}

// runLevel ramps n bots up over o.Ramp in rampSteps swarms, holds them
// for o.Hold, takes the figures, and stops them.
func runLevel(ctx context.Context, sys *system, urls []string, n int, o LargeOptions) *levelStats {
	lv := &levelStats{bots: n}
	o.Log("level %d bots: ramp %v, hold %v", n, o.Ramp, o.Hold)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		mu      sync.Mutex
		reports []swarmReport
		finals  = make([]bots.Progress, rampSteps)
		wg      sync.WaitGroup
	)
	for i := range rampSteps {
		size := n*(i+1)/rampSteps - n*i/rampSteps
		if size == 0 {
			continue
		}
		sw := &bots.Swarm{
			URLs:      rotate(urls, i),
			Players:   size,
			MoveEvery: o.MoveEvery,
			Name:      fmt.Sprintf("large%d-%d", n, i),
			Dial:      client.Options{DialTimeout: 10 * time.Second, ReadTimeout: readTimeout},
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !backoff.Sleep(lctx, o.Ramp*time.Duration(i)/rampSteps) {
				return
			}
			p, err := sw.Run(lctx, reportEvery, func(p bots.Progress) {
				mu.Lock()
				reports = append(reports, swarmReport{swarm: i, at: time.Now(), p: p})
				mu.Unlock()
			})
			if err != nil {
				o.Log("  swarm %d: %v", i, err)
			}
			mu.Lock()
			finals[i] = p
			mu.Unlock()
		}()
	}
	// Ramp, then hold, saying the connected count as it goes.
	holdStart := time.Now().Add(o.Ramp)
	end := holdStart.Add(o.Hold)
	for time.Now().Before(end) && ctx.Err() == nil {
		backoff.Sleep(ctx, 10*time.Second)
		mu.Lock()
		c := connectedNow(reports)
		mu.Unlock()
		o.Log("  %v: %d of %d bots connected", since(holdStart.Add(-o.Ramp)), c, n)
	}
	if ctx.Err() != nil {
		return lv
	}
	// The figures at the end of the hold, with the bots still connected.
	mu.Lock()
	lv.connected = connectedNow(reports)
	holdReports := slices.DeleteFunc(slices.Clone(reports), func(r swarmReport) bool { return r.at.Before(holdStart.Add(reportEvery)) })
	mu.Unlock()
	lv.sentRate, lv.recvRate, lv.p50, lv.p99, lv.samples = summariseHold(holdReports)
	lv.mem = containerUsage(ctx, sys)
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		lv.loadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	lv.hostHeapMiB, lv.hostGor = hostFigures()
	missing, err := sys.settled(ctx)
	if err != nil {
		missing = err.Error()
	}
	lv.settled = missing
	stop()
	wg.Wait()
	for _, p := range finals {
		lv.joinErrors += p.JoinErrors
		lv.drops += p.Drops
	}
	switch {
	case float64(lv.connected) < heldShare*float64(n):
		lv.failed = fmt.Sprintf("%d of %d bots connected at the end of the hold (join errors %d, drops %d)", lv.connected, n, lv.joinErrors, lv.drops)
	case lv.settled != "":
		lv.failed = "servers not passing and linked: " + lv.settled
	}
	return lv
}

// rotate returns urls starting at the i-th, so each swarm's first bot
// goes to another client server.
func rotate(urls []string, i int) []string {
	if len(urls) == 0 {
		return nil
	}
	i %= len(urls)
	return append(slices.Clone(urls[i:]), urls[:i]...)
}

// connectedNow sums the connected bots of each swarm's latest report.
func connectedNow(reports []swarmReport) int {
	last := map[int]int{}
	for _, r := range reports {
		last[r.swarm] = r.p.Connected
	}
	total := 0
	for _, c := range last {
		total += c
	}
	return total
}

// summariseHold combines the swarms' reports of the hold: the rates are
// each swarm's mean, summed; p50 is the sample-weighted mean of the
// reports' p50s and p99 the largest of their p99s (an upper bound: the
// swarms' histograms are not merged).
func summariseHold(reports []swarmReport) (sent, recv float64, p50, p99 time.Duration, samples uint64) {
	type acc struct {
		sent, recv float64
		n          int
	}
	per := map[int]*acc{}
	var weighted float64
	for _, r := range reports {
		a := per[r.swarm]
		if a == nil {
			a = &acc{}
			per[r.swarm] = a
		}
		a.sent += r.p.SentRate
		a.recv += r.p.ReceivedRate
		a.n++
		samples += r.p.RTT.Samples
		weighted += float64(r.p.RTT.P50) * float64(r.p.RTT.Samples)
		p99 = max(p99, r.p.RTT.P99)
	}
	for _, a := range per {
		sent += a.sent / float64(a.n)
		recv += a.recv / float64(a.n)
	}
	if samples > 0 {
		p50 = time.Duration(weighted / float64(samples))
	}
	return sent, recv, p50, p99, samples
}

// containerUsage reads docker stats once for every container of the
// project and summarises it by group (the Consul servers as "consul").
func containerUsage(ctx context.Context, sys *system) []groupUsage {
	groups := []string{"consul"}
	for _, g := range sys.sys.Groups {
		groups = append(groups, g.Name)
	}
	var out []groupUsage
	for _, g := range groups {
		services := []string{g}
		if g == "consul" {
			services = []string{"consul1", "consul2", "consul3"}
		}
		var ids []string
		for _, svc := range services {
			c, err := sys.Containers(ctx, svc)
			if err == nil {
				ids = append(ids, c...)
			}
		}
		if len(ids) == 0 {
			continue
		}
		stats, err := sys.Run(ctx, "docker", append([]string{"stats", "--no-stream", "--format", "{{.MemUsage}}\t{{.CPUPerc}}"}, ids...)...)
		if err != nil {
			sys.log("  docker stats %s: %v", g, err)
			continue
		}
		out = append(out, summariseUsage(g, stats))
	}
	return out
}

// summariseUsage summarises docker stats lines "12.3MiB / 23.4GiB\t1.25%"
// of one group; lines it cannot read are skipped.
func summariseUsage(group, stats string) groupUsage {
	u := groupUsage{group: group}
	var mems []float64
	for _, line := range strings.Split(strings.TrimSpace(stats), "\n") {
		mem, cpu, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		used, _, _ := strings.Cut(mem, "/")
		mib, err := parseMiB(strings.TrimSpace(used))
		if err != nil {
			continue
		}
		mems = append(mems, mib)
		if c, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(cpu), "%"), 64); err == nil {
			u.cpu += c
		}
	}
	if len(mems) == 0 {
		return u
	}
	slices.Sort(mems)
	u.n = len(mems)
	u.min, u.max = mems[0], mems[len(mems)-1]
	u.med = mems[len(mems)/2]
	if len(mems)%2 == 0 {
		u.med = (mems[len(mems)/2-1] + mems[len(mems)/2]) / 2
	}
	return u
}

// parseMiB reads a docker stats size ("512KiB", "12.3MiB", "1.2GiB",
// "800B", "1.5kB", "3MB") in MiB.
func parseMiB(s string) (float64, error) {
	units := []struct {
		suffix string
		bytes  float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"kB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("size %q: %w", s, err)
			}
			return v * u.bytes / (1 << 20), nil
		}
	}
	return 0, fmt.Errorf("size %q: no unit", s)
}

// printLarge writes the figures of every level as Markdown tables.
func printLarge(w io.Writer, shape string, levels []*levelStats) {
	fmt.Fprintf(w, "System: 3 Consul, %s\n\n", shape)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "| bots\t| connected\t| sent/s\t| received/s\t| RTT p50\t| RTT p99\t| RTT samples\t| join errors\t| drops\t| passing+linked\t| host load\t| bots' heap MiB\t| result\t|")
	fmt.Fprintln(tw, "|---\t|---\t|---\t|---\t|---\t|---\t|---\t|---\t|---\t|---\t|---\t|---\t|---\t|")
	for _, lv := range levels {
		linked, result := "yes", "held"
		if lv.settled != "" {
			linked = "no: " + lv.settled
		}
		if lv.failed != "" {
			result = "failed: " + lv.failed
		}
		fmt.Fprintf(tw, "| %d\t| %d\t| %.0f\t| %.0f\t| %v\t| %v\t| %d\t| %d\t| %d\t| %s\t| %s\t| %d\t| %s\t|\n",
			lv.bots, lv.connected, lv.sentRate, lv.recvRate, round(lv.p50), round(lv.p99), lv.samples,
			lv.joinErrors, lv.drops, linked, lv.loadAvg, lv.hostHeapMiB, result)
	}
	tw.Flush()
	for _, lv := range levels {
		fmt.Fprintf(w, "\nContainers at the end of the hold of %d bots (docker stats --no-stream):\n\n", lv.bots)
		tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
		fmt.Fprintln(tw, "| group\t| containers\t| memory min MiB\t| median MiB\t| max MiB\t| CPU % (sum)\t|")
		fmt.Fprintln(tw, "|---\t|---\t|---\t|---\t|---\t|---\t|")
		for _, u := range lv.mem {
			fmt.Fprintf(tw, "| %s\t| %d\t| %.1f\t| %.1f\t| %.1f\t| %.0f\t|\n", u.group, u.n, u.min, u.med, u.max, u.cpu)
		}
		tw.Flush()
	}
}

// hostFigures returns the heap in use of this process, which runs the
// bots, in MiB, and its goroutines.
func hostFigures() (heapMiB, goroutines int) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int(m.HeapInuse >> 20), runtime.NumGoroutine()
}
