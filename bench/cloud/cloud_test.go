package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/plugins"
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
// two replicas: Post and Get from game clients and from the world
// server's plugin (Get checks the rows it reads), and a fan-out to a few
// subscribers over both client servers.
func TestHarness(t *testing.T) {
	rig, cs := testRig(t, 2, "")
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

	cm, err := rig.World.host.CloudMemory()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runLoad(4, 0, 100*time.Millisecond, false, cpuMeter{}, worldPost(cm, payload)); err != nil {
		t.Fatal(err)
	}
	if err := loadWorldGets(cm, payload[:32]); err != nil {
		t.Fatal(err)
	}
	if _, err := runLoad(4, 0, 100*time.Millisecond, false, cpuMeter{}, worldGet(cm, 32)); err != nil {
		t.Fatal(err)
	}
	res, err = cs[1].Get(ctx, cloud.Query{Keys: []cloud.Key{worldKey(0), worldKey(3)}})
	if err != nil || res.Total != 2 || res.Rows[0].Uploader != cm.Ref() {
		t.Fatalf("rows the world server posted: %+v, %v", res, err)
	}

	fan, err := newFanClients(rig, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer fan.Close()
	for seq := uint64(1); seq <= 3; seq++ {
		if d, err := fan.cloudRound(seq); err != nil || d <= 0 {
			t.Fatalf("fan-out round %d: %v, %v", seq, d, err)
		}
	}
	// Without Redis the game plugin kicks a client asking for it.
	if err := ask(ctx, fan.pub, tagSet, payload, 0); err == nil || !strings.Contains(err.Error(), errNoRedisHere.Error()) {
		t.Fatalf("SET without Redis: %v", err)
	}
}

// testRig starts a rig and 4 clients on its first client server, ended
// with the test.
func testRig(t *testing.T, replicas int, redisAddr string) (*cloudRig, []*client.Client) {
	t.Helper()
	rig, err := startCloud(replicas, redisAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rig.Close)
	cs, err := rig.dialMany(4, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeAll(cs) })
	return rig, cs
}

// needRedis starts redis-server for a test, or skips it when none is
// installed, except under CI=true, where it fails.
func needRedis(t testing.TB) *redisServer {
	t.Helper()
	rs, err := startRedis()
	if errors.Is(err, errNoRedis) {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Stop)
	return rs
}

// TestHarnessRedis runs the Redis design's workloads briefly: SET and GET
// through a client server's plugin and from the world server's plugin,
// checking what Redis holds afterwards, and a fan-out through both client
// servers' subscriptions.
func TestHarnessRedis(t *testing.T) {
	rs := needRedis(t)
	rig, cs := testRig(t, 1, rs.Addr)
	payload := []byte("0123456789abcdef")
	rdb := rs.client(4)
	defer rdb.Close()
	if err := loadRedisGets(rdb, payload); err != nil {
		t.Fatal(err)
	}
	if _, err := runLoad(len(cs), 0, 100*time.Millisecond, true, cpuMeter{}, serverSet(cs, payload)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ref := cs[2].Ref()
	got, err := rdb.Get(ctx, fmt.Sprintf("bench:client:%s:%d", ref.Server, ref.ID)).Bytes()
	if err != nil || string(got) != string(payload) {
		t.Fatalf("the row the plugin stored for %s: %q, %v", ref, got, err)
	}
	if _, err := runLoad(len(cs), 0, 100*time.Millisecond, true, cpuMeter{}, serverGet(cs, len(payload))); err != nil {
		t.Fatal(err)
	}
	if _, err := runLoad(1, 0, 50*time.Millisecond, false, cpuMeter{}, serverGet(cs, len(payload)+1)); err == nil {
		t.Fatal("GET of the wrong size passed")
	}
	if _, err := runLoad(4, 0, 100*time.Millisecond, false, cpuMeter{}, redisSet(rig.World.rdb, payload)); err != nil {
		t.Fatal(err)
	}

	fan, err := newFanClients(rig, 6)
	if err != nil {
		t.Fatal(err)
	}
	defer fan.Close()
	for seq := uint64(1); seq <= 3; seq++ {
		if d, err := fan.gameRound(seq); err != nil || d <= 0 {
			t.Fatalf("Redis fan-out round %d: %v, %v", seq, d, err)
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
	cpu0, cpuErr := cpuTime(os.Getpid())
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
	// The CPU time of this process per operation (the benchmark's game
	// servers and clients alike; not redis-server's): it holds still on
	// a shared machine where ops/s does not. /proc's clock ticks are 10 ms: a run of a few
	// seconds reads it within a percent.
	if cpu1, err := cpuTime(os.Getpid()); err == nil && cpuErr == nil {
		b.ReportMetric(float64(cpu1-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
	}
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

// benchRedis starts redis-server for one benchmark, or skips it (fails
// under CI=true).
func benchRedis(b *testing.B) *redisServer { return needRedis(b) }

// benchCloud starts a rig and 50 clients on its first client server for
// one benchmark; redisAddr "" leaves the game plugins without Redis.
func benchCloud(b *testing.B, replicas int, redisAddr string) (*cloudRig, []*client.Client) {
	b.Helper()
	rig, err := startCloud(replicas, redisAddr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rig.Close)
	cs, err := rig.dialMany(50, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { closeAll(cs) })
	return rig, cs
}

var benchPayload = make([]byte, 64)

// Client side: 50 SDK clients through a client server.

func BenchmarkPost(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			_, cs := benchCloud(b, n, "")
			runN(b, len(cs), false, cloudPost(cs, benchPayload))
		})
	}
}

func BenchmarkEcho(b *testing.B) {
	_, cs := benchCloud(b, 1, "")
	runN(b, len(cs), false, echo(cs, benchPayload))
}

func BenchmarkGet(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			_, cs := benchCloud(b, n, "")
			if err := loadCloudGets(cs[0], benchPayload); err != nil {
				b.Fatal(err)
			}
			reportLatency(b, runN(b, len(cs), true, cloudGet(cs, len(benchPayload))))
		})
	}
}

// BenchmarkServerSET: the Redis design's write, the client server's
// plugin storing each client's message with SET before answering.
func BenchmarkServerSET(b *testing.B) {
	rs := benchRedis(b)
	_, cs := benchCloud(b, 1, rs.Addr)
	runN(b, len(cs), false, serverSet(cs, benchPayload))
}

// BenchmarkServerGET: the Redis design's read through the client server.
func BenchmarkServerGET(b *testing.B) {
	rs := benchRedis(b)
	_, cs := benchCloud(b, 1, rs.Addr)
	rdb := rs.client(1)
	defer rdb.Close()
	if err := loadRedisGets(rdb, benchPayload); err != nil {
		b.Fatal(err)
	}
	reportLatency(b, runN(b, len(cs), true, serverGet(cs, len(benchPayload))))
}

// Server side: 50 goroutines of a world server's plugin.

// benchWorld starts a rig for one benchmark and returns its world
// server's plugin's cloud memory.
func benchWorld(b *testing.B, replicas int) plugins.CloudMemory {
	b.Helper()
	rig, err := startCloud(replicas, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rig.Close)
	cm, err := rig.World.host.CloudMemory()
	if err != nil {
		b.Fatal(err)
	}
	return cm
}

func BenchmarkWorldPost(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			runN(b, 50, false, worldPost(benchWorld(b, n), benchPayload))
		})
	}
}

func BenchmarkWorldGet(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			cm := benchWorld(b, n)
			if err := loadWorldGets(cm, benchPayload); err != nil {
				b.Fatal(err)
			}
			reportLatency(b, runN(b, 50, true, worldGet(cm, len(benchPayload))))
		})
	}
}

// BenchmarkSET is go-redis SET from 50 connections of this process: the
// world plugin's Redis design, and the reference of clients talking to
// Redis straight.
func BenchmarkSET(b *testing.B) {
	rs := benchRedis(b)
	rdb := rs.client(50)
	defer rdb.Close()
	runN(b, 50, false, redisSet(rdb, benchPayload))
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

// BenchmarkFanout: one op is one Post that 1,000 subscribed clients, half
// on each client server, all receive; ns/op is the time until the last
// got it. redis-design: the same clients, one PUBLISH that each client
// server's plugin (SUBSCRIBEd) forwards to its clients.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			benchFan(b, n, "", (*fanClients).cloudRound)
		})
	}
	b.Run("redis-design", func(b *testing.B) {
		benchFan(b, 1, benchRedis(b).Addr, (*fanClients).gameRound)
	})
}

// benchFan runs b.N rounds of one fan-out to 1,000 clients.
func benchFan(b *testing.B, replicas int, redisAddr string, round func(*fanClients, uint64) (time.Duration, error)) {
	rig, err := startCloud(replicas, redisAddr)
	if err != nil {
		b.Fatal(err)
	}
	defer rig.Close()
	fan, err := newFanClients(rig, 1000)
	if err != nil {
		b.Fatal(err)
	}
	defer fan.Close()
	b.ResetTimer()
	for i := range b.N {
		if _, err := round(fan, uint64(i+1)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublish: one op is one PUBLISH that 1,000 subscribed
// connections all receive (reference: no game server).
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
