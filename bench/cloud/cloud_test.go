package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cloud"
)

// The benchmarks run only with -bench; the Redis ones skip when
// redis-server is not installed. The tests check the harness itself on the
// cloud-memory side only (no Redis), quickly.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == serveCloudCommand {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m,
		// go-redis starts a connection-checking goroutine per pool, which
		// it ends some time after Close.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"))
}

func TestPercentile(t *testing.T) {
	d := make([]time.Duration, 100)
	for i := range d {
		d[i] = time.Duration(i + 1)
	}
	if p50, p99 := percentile(d, 50), percentile(d, 99); p50 != 51 || p99 != 100 {
		t.Fatalf("p50 %v p99 %v", p50, p99)
	}
	if percentile(nil, 50) != 0 {
		t.Fatal("percentile of nothing")
	}
}

// TestHarness runs every cloud-memory workload briefly against a rig with
// two replicas: Post, Get (which checks the rows it reads), and a fan-out
// to a few subscribers.
func TestHarness(t *testing.T) {
	rig, err := startCloud(2)
	if err != nil {
		t.Fatal(err)
	}
	defer rig.Close()
	cs, err := rig.dialMany(4, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(cs)
	payload := make([]byte, 64)
	if err := loadCloudGets(cs[0], payload); err != nil {
		t.Fatal(err)
	}
	r, err := runLoad(len(cs), 20*time.Millisecond, 100*time.Millisecond, true, cpuMeter{}, cloudPost(cs, payload))
	if err != nil || r.Ops == 0 || len(r.Lat) != int(r.Ops) {
		t.Fatalf("Post load: %+v, %v", r.Ops, err)
	}
	if _, err := runLoad(len(cs), 0, 100*time.Millisecond, false, cpuMeter{}, cloudGet(cs, 64)); err != nil {
		t.Fatal(err)
	}
	if _, err := runLoad(1, 0, 50*time.Millisecond, false, cpuMeter{}, cloudGet(cs, 65)); err == nil {
		t.Fatal("Get of the wrong size passed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cs[1].Get(ctx, cloud.Query{Keys: []cloud.Key{postKey(0), postKey(3)}})
	if err != nil || res.Total != 2 {
		t.Fatalf("posted rows: %+v, %v", res, err)
	}
	fan, err := newCloudFan(rig, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer fan.Close()
	for seq := uint64(1); seq <= 3; seq++ {
		if d, err := fan.round(seq); err != nil || d <= 0 {
			t.Fatalf("fan-out round %d: %v, %v", seq, d, err)
		}
	}
}

// runN splits b.N operations over workers and, with record, returns their
// latencies.
func runN(b *testing.B, workers int, record bool, op func(ctx context.Context, w int) error) []time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var next atomic.Int64
	lats := make([][]time.Duration, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := op(ctx, w); err != nil {
					errs[w] = err
					cancel()
					return
				}
				if record {
					lats[w] = append(lats[w], time.Since(t0))
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return all
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(percentile(lat, 50))/1e3, "p50-µs")
	b.ReportMetric(float64(percentile(lat, 99))/1e3, "p99-µs")
}

// benchRedis starts redis-server for one benchmark, or skips it.
func benchRedis(b *testing.B) *redisServer {
	b.Helper()
	rs, err := startRedis()
	if errors.Is(err, errNoRedis) {
		b.Skip(err.Error())
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rs.Stop)
	return rs
}

// benchCloud starts a rig and 50 clients for one benchmark.
func benchCloud(b *testing.B, replicas int) (*cloudRig, []*client.Client) {
	b.Helper()
	rig, err := startCloud(replicas)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rig.Close)
	cs, err := rig.dialMany(50, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { closeAll(cs) })
	return rig, cs
}

var benchPayload = make([]byte, 64)

func BenchmarkPost(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			_, cs := benchCloud(b, n)
			runN(b, len(cs), false, cloudPost(cs, benchPayload))
		})
	}
}

func BenchmarkEcho(b *testing.B) {
	_, cs := benchCloud(b, 1)
	runN(b, len(cs), false, echo(cs, benchPayload))
}

func BenchmarkSET(b *testing.B) {
	rs := benchRedis(b)
	rdb := rs.client(50)
	defer rdb.Close()
	runN(b, 50, false, redisSet(rdb, benchPayload))
}

func BenchmarkGet(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			_, cs := benchCloud(b, n)
			if err := loadCloudGets(cs[0], benchPayload); err != nil {
				b.Fatal(err)
			}
			reportLatency(b, runN(b, len(cs), true, cloudGet(cs, len(benchPayload))))
		})
	}
}

func BenchmarkGET(b *testing.B) {
	rs := benchRedis(b)
	rdb := rs.client(50)
	defer rdb.Close()
	if err := loadRedisGets(rdb, benchPayload); err != nil {
		b.Fatal(err)
	}
	reportLatency(b, runN(b, 50, true, redisGet(rdb, len(benchPayload))))
}

// BenchmarkFanout: one op is one Post that 1,000 subscribed clients all
// receive; ns/op is the time until the last got it.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			rig, err := startCloud(n)
			if err != nil {
				b.Fatal(err)
			}
			defer rig.Close()
			fan, err := newCloudFan(rig, 1000)
			if err != nil {
				b.Fatal(err)
			}
			defer fan.Close()
			b.ResetTimer()
			for i := range b.N {
				if _, err := fan.round(uint64(i + 1)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPublish: one op is one PUBLISH that 1,000 subscribed
// connections all receive.
func BenchmarkPublish(b *testing.B) {
	rs := benchRedis(b)
	fan, err := newRedisFan(rs, 1000)
	if err != nil {
		b.Fatal(err)
	}
	defer fan.Close()
	b.ResetTimer()
	for i := range b.N {
		if _, err := fan.round(uint64(i + 1)); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCPUTime(t *testing.T) {
	m := cpuMeter{pids: []int{os.Getpid()}}
	before := m.sample()
	if before == nil {
		t.Skip("no /proc here")
	}
	x := 0
	for start := time.Now(); time.Since(start) < 100*time.Millisecond; {
		x++ // burn CPU: at least one clock tick's worth
	}
	used := m.since(before)
	if len(used) != 1 || used[0] <= 0 {
		t.Fatalf("CPU used by a busy loop: %v (%d iterations)", used, x)
	}
	if _, err := cpuTime(1 << 30); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}
