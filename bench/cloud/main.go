// Command cloud benchmarks cloudrift's cloud memory beside a Redis server on
// loopback, each figure at the same concurrency and in the same run, and
// reports each as a ratio (cloud memory / Redis):
//
//   - Post vs SET: throughput of 50 clients, each with one request in
//     flight (a closed loop), each overwriting a key of its own.
//   - Get vs GET: the same 50-client closed loop reading one 64-byte row
//     (value); throughput, and the p50 and p99 of the requests' latencies.
//   - fan-out: one Post to a key 1,000 clients subscribe to, vs one PUBLISH
//     to a channel 1,000 connections subscribe to: the time until all 1,000
//     received it.
//
// The cloud-memory side is game clients using the client SDK against one
// client server and the cloud replicas (1, then 3), all in this process
// over loopback. The Redis side is redis-server (started by this command on
// a free loopback port, without persistence, and stopped at the end) and
// go-redis clients in this process: a pool of 50 connections, and 1,000
// subscriber connections. The two sides alternate round by round, so they
// share the machine's conditions; throughputs are medians of the rounds.
//
// Usage:
//
//	bash bench/cloud/run.sh                   # builds, then runs with the defaults (about 90 s)
//	go run ./bench/cloud -replicas 1 -rounds 5
//
// Without redis-server installed it stops at once, saying so.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options of a run.
type options struct {
	replicas    []int
	clients     int
	size        int
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	subscribers int
	fanRounds   int
	inProcess   bool
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == serveCloudCommand {
		if err := serveCloud(args[1:], os.Stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", serveCloudCommand, err)
			return 1
		}
		return 0
	}
	var o options
	fs := flag.NewFlagSet("cloud", flag.ContinueOnError)
	fs.SetOutput(stderr)
	replicas := fs.String("replicas", "1,3", "comma-separated numbers of cloud replicas to measure, one system each")
	fs.IntVar(&o.clients, "clients", 50, "concurrent clients (and Redis connections) of the throughput and latency parts")
	fs.IntVar(&o.size, "size", 64, "bytes of each row (value)")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds of each throughput and latency measurement, per side")
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "measured time of each round")
	fs.DurationVar(&o.warmup, "warmup", 300*time.Millisecond, "uncounted time before each round")
	fs.IntVar(&o.subscribers, "subscribers", 1000, "fan-out: subscribers")
	fs.IntVar(&o.fanRounds, "fan-rounds", 30, "fan-out: measured messages per side (after 3 uncounted)")
	fs.BoolVar(&o.inProcess, "in-process", false, "run the cloud servers in this process, beside the clients, instead of in a child process")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (the clients; the cloud servers too with -in-process) to this `file`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	for _, f := range strings.Split(*replicas, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(stderr, "cloud: -replicas %q: want numbers of at least 1\n", *replicas)
			return 2
		}
		o.replicas = append(o.replicas, n)
	}
	if o.clients < 1 || o.size < 8 || o.rounds < 1 || o.duration <= 0 || o.subscribers < 1 || o.fanRounds < 1 {
		fmt.Fprintln(stderr, "cloud: -clients, -rounds, -subscribers, -fan-rounds must be positive, -size at least 8")
		return 2
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "cloud: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "cloud: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if err := bench(o, stdout); err != nil {
		fmt.Fprintf(stderr, "cloud: %v\n", err)
		return 1
	}
	return 0
}

// figures of one replica count.
type figures struct {
	replicas            int
	post, set           []float64       // ops/s per round
	postCPU, setCPU     []time.Duration // CPU time of every process per operation, per round (0: unknown)
	postCPUBy, setCPUBy []time.Duration // the last round's, per process: clients, then servers
	echo                []float64       // ops/s per round of the single-hop echo (the transport's floor)
	echoCPU             []time.Duration
	get, redisGet       []float64
	getP50, redisGetP50 []time.Duration
	getP99, redisGetP99 []time.Duration
	fan, publish        []time.Duration // per message, sorted
}

func bench(o options, out io.Writer) error {
	rs, err := startRedis()
	if err != nil {
		return err
	}
	defer rs.Stop()
	fmt.Fprintf(out, "cloud memory vs Redis %s on loopback; %s, %d CPUs; %d clients, %d-byte rows, %d rounds of %s per side, %d fan-out subscribers\n\n",
		rs.Version, runtime.Version(), runtime.NumCPU(), o.clients, o.size, o.rounds, o.duration, o.subscribers)
	payload := make([]byte, o.size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	rdb := rs.client(o.clients)
	defer rdb.Close()
	if err := loadRedisGets(rdb, payload); err != nil {
		return err
	}
	rfan, err := newRedisFan(rs, o.subscribers)
	if err != nil {
		return err
	}
	defer rfan.Close()
	for _, n := range o.replicas {
		f, err := benchReplicas(o, n, payload, rs, rdb, rfan)
		if err != nil {
			return fmt.Errorf("%d replicas: %w", n, err)
		}
		printFigures(out, f, o)
	}
	return nil
}

// benchReplicas measures one system of n replicas beside Redis.
func benchReplicas(o options, n int, payload []byte, rs *redisServer, rdb *redis.Client, rfan *redisFan) (figures, error) {
	f := figures{replicas: n}
	start := startCloudProcess
	if o.inProcess {
		start = startCloud
	}
	rig, err := start(n)
	if err != nil {
		return f, err
	}
	defer rig.Close()
	cs, err := rig.dialMany(o.clients, nil)
	if err != nil {
		return f, err
	}
	defer closeAll(cs)
	loader, err := rig.dial(nil)
	if err != nil {
		return f, err
	}
	defer loader.Close()
	if err := loadCloudGets(loader, payload); err != nil {
		return f, err
	}
	// Every process on each side: the clients (this process) and the
	// servers (redis-server; the cloud servers' process unless in-process).
	redisCPU := cpuMeter{pids: []int{os.Getpid(), rs.Pid()}}
	cloudCPU := cpuMeter{pids: []int{os.Getpid()}}
	if rig.pid != 0 {
		cloudCPU.pids = append(cloudCPU.pids, rig.pid)
	}
	for range o.rounds {
		r, err := runLoad(o.clients, o.warmup, o.duration, false, redisCPU, redisSet(rdb, payload))
		if err != nil {
			return f, fmt.Errorf("SET: %w", err)
		}
		f.set = append(f.set, r.PerSec())
		f.setCPU = append(f.setCPU, r.CPUPerOp())
		f.setCPUBy = perOp(r)
		if r, err = runLoad(o.clients, o.warmup, o.duration, false, cloudCPU, cloudPost(cs, payload)); err != nil {
			return f, fmt.Errorf("Post: %w", err)
		}
		f.post = append(f.post, r.PerSec())
		f.postCPU = append(f.postCPU, r.CPUPerOp())
		f.postCPUBy = perOp(r)
		if r, err = runLoad(o.clients, o.warmup, o.duration, false, cloudCPU, echo(cs, payload)); err != nil {
			return f, fmt.Errorf("echo: %w", err)
		}
		f.echo = append(f.echo, r.PerSec())
		f.echoCPU = append(f.echoCPU, r.CPUPerOp())
		if r, err = runLoad(o.clients, o.warmup, o.duration, true, redisCPU, redisGet(rdb, o.size)); err != nil {
			return f, fmt.Errorf("GET: %w", err)
		}
		f.redisGet = append(f.redisGet, r.PerSec())
		f.redisGetP50 = append(f.redisGetP50, percentile(r.Lat, 50))
		f.redisGetP99 = append(f.redisGetP99, percentile(r.Lat, 99))
		if r, err = runLoad(o.clients, o.warmup, o.duration, true, cloudCPU, cloudGet(cs, o.size)); err != nil {
			return f, fmt.Errorf("Get: %w", err)
		}
		f.get = append(f.get, r.PerSec())
		f.getP50 = append(f.getP50, percentile(r.Lat, 50))
		f.getP99 = append(f.getP99, percentile(r.Lat, 99))
	}
	cfan, err := newCloudFan(rig, o.subscribers)
	if err != nil {
		return f, fmt.Errorf("fan-out subscribers: %w", err)
	}
	defer cfan.Close()
	seq := uint64(time.Now().UnixNano())
	for i := range o.fanRounds + 3 {
		seq++
		d, err := rfan.round(seq)
		if err != nil {
			return f, fmt.Errorf("PUBLISH: %w", err)
		}
		seq++
		c, err := cfan.round(seq)
		if err != nil {
			return f, fmt.Errorf("fan-out Post: %w", err)
		}
		if i >= 3 {
			f.publish = append(f.publish, d)
			f.fan = append(f.fan, c)
		}
	}
	slices.Sort(f.publish)
	slices.Sort(f.fan)
	return f, nil
}

// perOp is each metered process's CPU time per operation of r (nil when
// unknown).
func perOp(r loadResult) []time.Duration {
	if r.CPU == nil || r.Ops == 0 {
		return nil
	}
	out := make([]time.Duration, len(r.CPU))
	for i, t := range r.CPU {
		out[i] = t / time.Duration(r.Ops)
	}
	return out
}

func medianF(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianD(xs []time.Duration) time.Duration {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// pairedRatio is the median over rounds of cloud[i] / redis[i]: the two
// sides of a round ran one after the other, so their ratio is steadier
// than the ratio of medians on a machine whose load drifts.
func pairedRatio(cloud, redis []float64) float64 {
	rs := make([]float64, len(cloud))
	for i := range cloud {
		rs[i] = cloud[i] / redis[i]
	}
	return medianF(rs)
}

func durations(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d)
	}
	return out
}

func printFigures(out io.Writer, f figures, o options) {
	where := "in this process, beside the clients"
	if !o.inProcess {
		where = "in a child process"
	}
	fmt.Fprintf(out, "%d cloud replica(s) and 1 client server, %s\n", f.replicas, where)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  \tcloud memory\tRedis\tcloud / Redis\t")
	rate := func(name string, c, r []float64, note string) {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%.2f\t%s\n", name, ops(medianF(c)), ops(medianF(r)), pairedRatio(c, r), note)
	}
	lat := func(name string, c, r []time.Duration, note string) {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%.2f\t%s\n", name, us(medianD(c)), us(medianD(r)), pairedRatio(durations(c), durations(r)), note)
	}
	fan := func(name string, p float64, note string) {
		c, r := percentile(f.fan, p), percentile(f.publish, p)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%.2f\t%s\n", name, us(c), us(r), float64(c)/float64(r), note)
	}
	rate(fmt.Sprintf("Post vs SET, %d clients", o.clients), f.post, f.set, "higher is better; target >= 1")
	if f.postCPU[0] > 0 && f.setCPU[0] > 0 {
		lat("CPU per Post vs per SET", f.postCPU, f.setCPU, "clients and servers, user+system; lower is better")
	}
	rate(fmt.Sprintf("echo vs SET, %d clients", o.clients), f.echo, f.set, "reference: one hop, no cloud memory")
	if f.echoCPU[0] > 0 && f.setCPU[0] > 0 {
		lat("CPU per echo vs per SET", f.echoCPU, f.setCPU, "reference")
	}
	rate(fmt.Sprintf("Get vs GET, %d clients", o.clients), f.get, f.redisGet, "higher is better")
	lat("Get vs GET latency p50", f.getP50, f.redisGetP50, "lower is better")
	lat("Get vs GET latency p99", f.getP99, f.redisGetP99, "lower is better")
	fan(fmt.Sprintf("fan-out to %d, p50", o.subscribers), 50, "time until all got it; lower is better")
	fan(fmt.Sprintf("fan-out to %d, p90", o.subscribers), 90, "")
	tw.Flush()
	if len(f.postCPUBy) > 0 && len(f.setCPUBy) == 2 {
		servers := "servers (in this process)"
		if len(f.postCPUBy) == 2 {
			servers = "servers " + us(f.postCPUBy[1])
		}
		fmt.Fprintf(out, "  CPU per op, last round: Post: clients %s, %s | SET: clients %s, redis-server %s\n",
			us(f.postCPUBy[0]), servers, us(f.setCPUBy[0]), us(f.setCPUBy[1]))
	}
	fmt.Fprintf(out, "  ops/s per round: Post %s | SET %s | echo %s | Get %s | GET %s\n", opsList(f.post), opsList(f.set), opsList(f.echo), opsList(f.get), opsList(f.redisGet))
	fmt.Fprintln(out, "  (throughputs and latencies: medians of the rounds; ratios: medians of the rounds' ratios; fan-out: over every message)")
	fmt.Fprintln(out)
}

func ops(x float64) string { return fmt.Sprintf("%.0f ops/s", x) }

func opsList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, ", ")
}

func us(d time.Duration) string {
	if d < 100*time.Microsecond {
		return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
	}
	if d >= 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}
