// Command cloud benchmarks cloudrift's cloud memory beside what a studio
// builds without it: its own game servers in front of a Redis server (the
// Redis design), each figure at the same concurrency and in the same run,
// reported as a ratio (cloud memory / Redis design):
//
//   - server side: a plugin of a world (internal) server whose 50
//     goroutines each keep one operation in flight (a closed loop):
//     CloudMemory().Post of its own row vs SET through go-redis, and
//     CloudMemory().Get of one 64-byte row vs GET (throughput, p50, p99);
//   - client side: 50 SDK game clients through a client (external)
//     server: Post vs a message that the server's plugin stores with SET
//     before answering, and Get vs a message the plugin answers with a
//     GET's value;
//   - fan-out: one Post to a key 1,000 clients (half on each of two client
//     servers) subscribe to, vs one PUBLISH that each client server's
//     plugin, SUBSCRIBEd to the channel, forwards to its clients: the time
//     until all 1,000 received it (p50, p99).
//
// References, labelled as such: a single-hop echo over the same WebSocket
// stack (no cloud memory, no Redis), and go-redis clients talking to Redis
// straight (SET, GET, PUBLISH to 1,000 connections), which no game does.
//
// The server-side figures run the servers (the world server and the cloud
// replicas) in this process; the client-side ones run them in a child
// process (this binary, serve-cloud) unless -in-process, with the game
// clients in this process. redis-server is started by this command on a
// free loopback port, without persistence, and stopped at the end. The
// two sides alternate round by round, so they share the machine's
// conditions; throughputs are medians of the rounds, ratios the medians
// of the rounds' ratios.
//
// Usage:
//
//	bash bench/cloud/run.sh                   # builds, then runs with the defaults (about 3 minutes)
//	go -C bench run ./cloud -replicas 1 -rounds 5
//
// Without redis-server installed it stops at once, saying so.
package main

import (
	"context"
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
	only        string // "": every part; else "server", "client" or "fanout"
}

// runs reports whether the run measures part.
func (o options) runs(part string) bool { return o.only == "" || o.only == part }

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
	fs.StringVar(&o.only, "only", "", "measure only this part: server, client or fanout (default: all three)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (the clients, the server-side part's servers, and every server with -in-process) to this `file`")
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
	if !slices.Contains([]string{"", "server", "client", "fanout"}, o.only) {
		fmt.Fprintf(stderr, "cloud: -only %q: want server, client or fanout\n", o.only)
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

// series is one workload's figures, one entry per round.
type series struct {
	ops      []float64       // ops/s
	cpu      []time.Duration // CPU time of every metered process per operation (0: unknown)
	p50, p99 []time.Duration // only for workloads whose latencies are recorded
}

func (s *series) add(r loadResult) {
	s.ops = append(s.ops, r.PerSec())
	s.cpu = append(s.cpu, r.CPUPerOp())
	if len(r.Lat) > 0 {
		s.p50 = append(s.p50, percentile(r.Lat, 50))
		s.p99 = append(s.p99, percentile(r.Lat, 99))
	}
}

// figures of one replica count. The Redis design is what a studio builds
// without cloud memory: its own servers' plugins in front of Redis.
type figures struct {
	replicas int
	// Server side: goroutines of a world server's plugin; its cloud
	// memory vs its Redis client.
	worldPost, worldSet, worldGet, worldGET series
	// Client side: SDK clients through a client server; cloud memory vs
	// the client server's plugin in front of Redis.
	post, serverSet, get, serverGET series
	// References: the single-hop echo (no cloud memory, no Redis), and
	// go-redis clients talking to Redis straight (no game server).
	echo, directSet, directGET series
	// Fan-out, per message, sorted: cloud memory, the Redis design (client
	// servers subscribed, forwarding), and a reference PUBLISH straight to
	// as many Redis connections.
	fan, fanRedis, fanDirect []time.Duration
}

func bench(o options, out io.Writer) error {
	rs, err := startRedis()
	if err != nil {
		return err
	}
	defer rs.Stop()
	fmt.Fprintf(out, "cloud memory vs Redis %s, all over loopback TCP (cloud links too: links.socketDir off); %s, %d CPUs; %d clients, %d-byte rows, %d rounds of %s per side, %d fan-out subscribers\n\n",
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
		f := figures{replicas: n}
		if o.runs("server") {
			if err := benchServerSide(o, &f, payload, rs); err != nil {
				return fmt.Errorf("%d replicas, server side: %w", n, err)
			}
		}
		if o.runs("client") || o.runs("fanout") {
			if err := benchClientSide(o, &f, payload, rs, rdb, rfan); err != nil {
				return fmt.Errorf("%d replicas, client side: %w", n, err)
			}
		}
		printFigures(out, f, o)
	}
	return nil
}

// workload is one closed-loop load of a round and where its figures go.
type workload struct {
	s      *series
	name   string
	record bool // latencies
	meter  cpuMeter
	op     func(context.Context, int) error
}

// rounds runs one round of each workload, in order.
func rounds(o options, ws []workload) error {
	for _, w := range ws {
		r, err := runLoad(o.clients, o.warmup, o.duration, w.record, w.meter, w.op)
		if err != nil {
			return fmt.Errorf("%s: %w", w.name, err)
		}
		w.s.add(r)
	}
	return nil
}

// benchServerSide measures a world server's plugin, whose o.clients
// goroutines each keep one operation in flight, through the cloud memory
// and through its Redis client. The servers run in this process (the
// world server and the replicas; redis-server in its own).
func benchServerSide(o options, f *figures, payload []byte, rs *redisServer) error {
	rig, err := startCloud(f.replicas, rs.Addr)
	if err != nil {
		return err
	}
	defer rig.Close()
	cm, err := rig.World.host.CloudMemory()
	if err != nil {
		return err
	}
	if err := loadWorldGets(cm, payload); err != nil {
		return err
	}
	rdb := rig.World.rdb
	cloudCPU := cpuMeter{pids: []int{os.Getpid()}}
	redisCPU := cpuMeter{pids: []int{os.Getpid(), rs.Pid()}}
	for range o.rounds {
		if err := rounds(o, []workload{
			{&f.worldSet, "world SET", false, redisCPU, redisSet(rdb, payload)},
			{&f.worldPost, "world Post", false, cloudCPU, worldPost(cm, payload)},
			{&f.worldGET, "world GET", true, redisCPU, redisGet(rdb, o.size)},
			{&f.worldGet, "world Get", true, cloudCPU, worldGet(cm, o.size)},
		}); err != nil {
			return err
		}
	}
	return nil
}

// benchClientSide measures game clients through a client server, with the
// servers in a child process unless o.inProcess; then the fan-out.
func benchClientSide(o options, f *figures, payload []byte, rs *redisServer, rdb *redis.Client, rfan *redisFan) error {
	start := startCloudProcess
	if o.inProcess {
		start = startCloud
	}
	rig, err := start(f.replicas, rs.Addr)
	if err != nil {
		return err
	}
	defer rig.Close()
	cs, err := rig.dialMany(o.clients, false, nil)
	if err != nil {
		return err
	}
	defer closeAll(cs)
	loader, err := rig.dial(0, hooks{})
	if err != nil {
		return err
	}
	defer loader.Close()
	if err := loadCloudGets(loader, payload); err != nil {
		return err
	}
	// Every process on each side: the clients (this process) and the
	// servers (the cloud servers' process unless in-process; redis-server
	// too for the Redis design).
	cloudCPU := cpuMeter{pids: []int{os.Getpid()}}
	if rig.pid != 0 {
		cloudCPU.pids = append(cloudCPU.pids, rig.pid)
	}
	redisCPU := cpuMeter{pids: append(slices.Clone(cloudCPU.pids), rs.Pid())}
	directCPU := cpuMeter{pids: []int{os.Getpid(), rs.Pid()}}
	for range o.rounds {
		if !o.runs("client") {
			break
		}
		if err := rounds(o, []workload{
			{&f.serverSet, "SET behind the client server", false, redisCPU, serverSet(cs, payload)},
			{&f.post, "Post", false, cloudCPU, cloudPost(cs, payload)},
			{&f.echo, "echo", false, cloudCPU, echo(cs, payload)},
			{&f.directSet, "SET straight", false, directCPU, redisSet(rdb, payload)},
			{&f.serverGET, "GET behind the client server", true, redisCPU, serverGet(cs, o.size)},
			{&f.get, "Get", true, cloudCPU, cloudGet(cs, o.size)},
			{&f.directGET, "GET straight", true, directCPU, redisGet(rdb, o.size)},
		}); err != nil {
			return err
		}
	}
	if !o.runs("fanout") {
		return nil
	}
	fan, err := newFanClients(rig, o.subscribers)
	if err != nil {
		return fmt.Errorf("fan-out subscribers: %w", err)
	}
	defer fan.Close()
	seq := uint64(time.Now().UnixNano())
	for i := range o.fanRounds + 3 {
		var ds [3]time.Duration
		for j, side := range []func(uint64) (time.Duration, error){fan.gameRound, fan.cloudRound, rfan.round} {
			seq++
			if ds[j], err = side(seq); err != nil {
				return fmt.Errorf("fan-out (%s): %w", []string{"Redis design", "cloud memory", "PUBLISH straight"}[j], err)
			}
		}
		if i >= 3 {
			f.fanRedis = append(f.fanRedis, ds[0])
			f.fan = append(f.fan, ds[1])
			f.fanDirect = append(f.fanDirect, ds[2])
		}
	}
	slices.Sort(f.fanRedis)
	slices.Sort(f.fan)
	slices.Sort(f.fanDirect)
	return nil
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

// verdict says whether ratio meets a target: at least min when higher is
// better, at most max when lower is.
func verdict(ratio float64, atLeast bool, target float64) string {
	met := ratio >= target
	want := ">="
	if !atLeast {
		met, want = ratio <= target, "<="
	}
	word := "not met"
	if met {
		word = "met"
	}
	return fmt.Sprintf("target %s %.1f: %s", want, target, word)
}

func printFigures(out io.Writer, f figures, o options) {
	where := "in a child process"
	if o.inProcess {
		where = "in this process, beside the clients"
	}
	var tw *tabwriter.Writer
	section := func(title string) {
		if tw != nil {
			tw.Flush()
		}
		fmt.Fprintln(out, title)
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  \tcloud memory\tRedis design\tcloud / Redis\t")
	}
	rate := func(name string, c, r series, note string) float64 {
		ratio := pairedRatio(c.ops, r.ops)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%.2f\t%s\n", name, ops(medianF(c.ops)), ops(medianF(r.ops)), ratio, note)
		return ratio
	}
	target := func(name string, c, r series, min float64) {
		rate(name, c, r, verdict(pairedRatio(c.ops, r.ops), true, min))
	}
	lat := func(name string, c, r []time.Duration, note string) {
		if len(c) == 0 || len(r) == 0 || c[0] == 0 || r[0] == 0 {
			return
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%.2f\t%s\n", name, us(medianD(c)), us(medianD(r)), pairedRatio(durations(c), durations(r)), note)
	}
	fan := func(name string, c, r []time.Duration, p float64, note func(ratio float64) string) {
		cp, rp := percentile(c, p), percentile(r, p)
		ratio := float64(cp) / float64(rp)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%.2f\t%s\n", name, us(cp), us(rp), ratio, note(ratio))
	}
	say := func(s string) func(float64) string { return func(float64) string { return s } }

	fmt.Fprintf(out, "%d cloud replica(s)\n", f.replicas)
	if len(f.worldPost.ops) > 0 {
		section(fmt.Sprintf("Server side: a world server's plugin, %d goroutines (servers in this process)", o.clients))
		target("Post vs SET", f.worldPost, f.worldSet, 1.5)
		lat("CPU per Post vs per SET", f.worldPost.cpu, f.worldSet.cpu, "all processes, user+system; lower is better")
		target("Get vs GET", f.worldGet, f.worldGET, 1.5)
		lat("CPU per Get vs per GET", f.worldGet.cpu, f.worldGET.cpu, "all processes, user+system; lower is better")
		lat("Get vs GET latency p50", f.worldGet.p50, f.worldGET.p50, "lower is better")
		lat("Get vs GET latency p99", f.worldGet.p99, f.worldGET.p99, "lower is better")
	}
	if len(f.post.ops) > 0 {
		section(fmt.Sprintf("Client side: %d SDK clients through a client server (servers %s)", o.clients, where))
		target("Post vs SET behind the server", f.post, f.serverSet, 1.5)
		lat("CPU per Post vs per SET", f.post.cpu, f.serverSet.cpu, "all processes, user+system; lower is better")
		target("Get vs GET behind the server", f.get, f.serverGET, 1.5)
		lat("CPU per Get vs per GET", f.get.cpu, f.serverGET.cpu, "all processes, user+system; lower is better")
		lat("Get vs GET latency p50", f.get.p50, f.serverGET.p50, "lower is better")
		lat("Get vs GET latency p99", f.get.p99, f.serverGET.p99, "lower is better")
		rate("reference: echo vs SET behind the server", f.echo, f.serverSet, "one hop, no cloud memory, no Redis")
		rate("reference: Post vs SET from the clients straight", f.post, f.directSet, "no game server in front of Redis")
		rate("reference: Get vs GET from the clients straight", f.get, f.directGET, "no game server in front of Redis")
	}
	if len(f.fan) > 0 {
		section(fmt.Sprintf("Fan-out: one message to %d clients over %d client servers, time until all got it", o.subscribers, clientServers))
		fan("p50", f.fan, f.fanRedis, 50, func(r float64) string { return verdict(r, false, 1) })
		fan("p99", f.fan, f.fanRedis, 99, say("lower is better"))
		fan("reference: p50 vs PUBLISH straight", f.fan, f.fanDirect, 50, say("to as many Redis connections, no game server"))
		fan("reference: p99 vs PUBLISH straight", f.fan, f.fanDirect, 99, say(""))
	}
	if tw != nil {
		tw.Flush()
	}
	if len(f.worldPost.ops) > 0 {
		fmt.Fprintf(out, "  ops/s per round: world Post %s | world SET %s | world Get %s | world GET %s\n", opsList(f.worldPost.ops), opsList(f.worldSet.ops), opsList(f.worldGet.ops), opsList(f.worldGET.ops))
	}
	if len(f.post.ops) > 0 {
		fmt.Fprintf(out, "  ops/s per round: Post %s | SET behind %s | Get %s | GET behind %s | echo %s\n", opsList(f.post.ops), opsList(f.serverSet.ops), opsList(f.get.ops), opsList(f.serverGET.ops), opsList(f.echo.ops))
	}
	fmt.Fprintln(out, "  (throughputs and latencies: medians of the rounds; ratios: medians of the rounds' ratios; fan-out: over every message, p99 the nearest rank)")
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
