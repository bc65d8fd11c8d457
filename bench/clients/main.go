// Command clients benchmarks cloudrift's game-client path over real
// WebSocket connections on loopback, each figure beside a baseline
// measured in the same run:
//
//   - relay round trip: client → gate (external) server → world (internal)
//     server → back to the client (the world's plugin calls
//     Host.SendToClient), beside a single-hop echo (the gate's plugin calls
//     Client.Send) on the same connection, the two alternating message by
//     message. Reports p50 and p99 of each and the ratio of the p50s.
//   - pipelined throughput: 50 connections each keeping a window of
//     messages in flight, 64-byte and 1 KB payloads, relay beside echo;
//     the relay both over the link socket of this host (the default for
//     servers of one host) and over loopback TCP (as between hosts).
//   - idle clients: 20,000 idle WebSocket clients on one external server
//     running in its own process; the server's VmRSS per client.
//
// The clients use the client SDK (package client) for the first two; the
// idle clients are raw gorilla/websocket connections, because they dial
// from several source addresses (loopback has about 28,000 ephemeral
// ports per source address) and the SDK has no dialer option.
//
// Usage:
//
//	go run ./bench/clients                      # all three
//	go run ./bench/clients -only relay,throughput
//	bash bench/clients/run.sh                   # builds once, runs all three
//
// serve-idle and dial-idle are the child processes of the idle
// measurement; the command starts them itself.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/cloudrift/cloudrift/config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func newFlagSet(name string) *flag.FlagSet {
	return flag.NewFlagSet(name, flag.ContinueOnError)
}

// run runs the command and returns its exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "serve-idle" || args[0] == "dial-idle") {
		child := serveIdle
		if args[0] == "dial-idle" {
			child = dialIdle
		}
		if err := child(args[1:]); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", args[0], err)
			return 1
		}
		return 0
	}
	fs := newFlagSet("clients")
	fs.SetOutput(stderr)
	only := fs.String("only", "relay,throughput,idle", "comma-separated parts to run: relay, throughput, idle")
	samples := fs.Int("samples", 20000, "relay: measured round trips of each kind")
	warm := fs.Int("warm", 2000, "relay: uncounted round trips of each kind first")
	size := fs.Int("size", 64, "relay: payload bytes")
	rate := fs.Int("rate", 1_000_000, "throughput: the clients' rate limit (messages/s and burst) in the test system")
	conns := fs.Int("conns", 50, "throughput: client connections")
	window := fs.Int("window", 32, "throughput: messages in flight per connection")
	rounds := fs.Int("rounds", 3, "throughput: rounds of (echo, relay) per payload size")
	dur := fs.Duration("duration", 3*time.Second, "throughput: measured time per run")
	warmup := fs.Duration("warmup", 500*time.Millisecond, "throughput: uncounted time before each run")
	idleN := fs.Int("idle-clients", 20000, "idle: clients to connect")
	perProc := fs.Int("idle-per-proc", 10000, "idle: most clients per dialer process")
	sources := fs.String("idle-sources", "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9", "idle: source addresses")
	profile := fs.String("idle-heap-profile", "", "idle: write the server's heap profile (with every client connected) to this file")
	profRate := fs.Int("idle-memprofilerate", 512, "idle: the server's runtime.MemProfileRate when profiling")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (clients and, for relay and throughput, the servers) to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	parts := map[string]bool{}
	for _, p := range strings.Split(*only, ",") {
		switch p = strings.TrimSpace(p); p {
		case "relay", "throughput", "idle":
			parts[p] = true
		default:
			fmt.Fprintf(stderr, "clients: unknown part %q\n", p)
			return 2
		}
	}
	code := 0
	fail := func(part string, err error) {
		fmt.Fprintf(stderr, "%s: %v\n", part, err)
		code = 1
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fail("cpuprofile", err)
			return code
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fail("cpuprofile", err)
			return code
		}
		defer pprof.StopCPUProfile()
	}
	if parts["relay"] || parts["throughput"] {
		rig, err := startRelayRig(*rate, "")
		if err != nil {
			fail("relay", err)
			return code
		}
		if parts["relay"] {
			if err := reportRelay(stdout, rig.URL, *samples, *warm, *size); err != nil {
				fail("relay", err)
			}
		}
		if parts["throughput"] {
			tcp, err := startRelayRig(*rate, config.SocketDirOff)
			if err != nil {
				fail("throughput", err)
			} else {
				if err := reportThroughput(stdout, rig.URL, tcp.URL, *conns, *window, *rounds, *warmup, *dur); err != nil {
					fail("throughput", err)
				}
				tcp.Close()
			}
		}
		rig.Close()
	}
	if parts["idle"] {
		exe, err := os.Executable()
		if err != nil {
			fail("idle", err)
			return code
		}
		o := idleOptions{Exe: exe, Clients: *idleN, PerProc: *perProc, Sources: strings.Split(*sources, ","), Profile: *profile, ProfRate: *profRate}
		if err := reportIdle(stdout, o); err != nil {
			fail("idle", err)
		}
	}
	return code
}

func reportRelay(w io.Writer, url string, n, warm, size int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fmt.Fprintf(w, "== relay round trip: 1 client (SDK), %d-byte payload, %d round trips of each kind after %d uncounted, alternating\n", size, n, warm)
	start := time.Now()
	r, err := measureRoundTrips(ctx, url, n, warm, size)
	if err != nil {
		return err
	}
	e50, e99 := percentile(r.Echo, 50), percentile(r.Echo, 99)
	r50, r99 := percentile(r.Relay, 50), percentile(r.Relay, 99)
	fmt.Fprintf(w, "single-hop echo (client→gate→client)         p50 %8s  p99 %8s\n", us(e50), us(e99))
	fmt.Fprintf(w, "relay (client→gate→world→gate→client)        p50 %8s  p99 %8s\n", us(r50), us(r99))
	fmt.Fprintf(w, "ratio relay/echo                             p50 %7.2fx  p99 %7.2fx   (target: p50 ratio <= 3)\n",
		float64(r50)/float64(e50), float64(r99)/float64(e99))
	fmt.Fprintf(w, "(took %s)\n\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func us(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d)/1e3) }

// reportThroughput measures rounds of (echo, relay, relay over TCP):
// echo and relay on the rig at url, whose link runs over the link socket,
// and relay again on the rig at tcpURL, whose link runs over loopback TCP.
func reportThroughput(w io.Writer, url, tcpURL string, conns, window, rounds int, warm, dur time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fmt.Fprintf(w, "== pipelined throughput: %d clients (SDK) x %d messages in flight each; %d rounds of echo, relay, relay over TCP, each %s measured after %s warm-up\n",
		conns, window, rounds, dur, warm)
	fmt.Fprintf(w, "   (a message is one round trip; MB/s counts its payload once; figures are the median round;\n")
	fmt.Fprintf(w, "    relay links gate and world over this host's link socket, as servers of one host link by default,\n")
	fmt.Fprintf(w, "    relay-tcp over loopback TCP (links.socketDir: off), as servers of different hosts link;\n")
	fmt.Fprintf(w, "    each ratio pairs a relay round with the echo round just before it; cpu-µs/msg is this\n")
	fmt.Fprintf(w, "    process's CPU time (clients and servers) per message, steadier than the rate)\n")
	fmt.Fprintf(w, "%-8s %-9s %12s %10s %11s   %s\n", "payload", "path", "messages/s", "MB/s", "cpu-µs/msg", "rounds (messages/s)")
	start := time.Now()
	paths := []struct {
		name string
		url  string
		tag  uint16
	}{{"echo", url, tagEcho}, {"relay", url, tagRelay}, {"relay-tcp", tcpURL, tagRelay}}
	for _, size := range []int{64, 1024} {
		runs, cpu := make([][]float64, len(paths)), make([][]float64, len(paths))
		for range rounds {
			for i, p := range paths {
				r, err := measureThroughput(ctx, p.url, conns, window, size, p.tag, warm, dur)
				if err != nil {
					return fmt.Errorf("%d bytes, %s: %w", size, p.name, err)
				}
				runs[i] = append(runs[i], r.PerSecond())
				cpu[i] = append(cpu[i], r.CPUPerMessage())
			}
		}
		ratios := make([][]float64, len(paths))
		for i := 1; i < len(paths); i++ {
			for k := range runs[0] {
				ratios[i] = append(ratios[i], runs[i][k]/runs[0][k])
			}
		}
		for i, p := range paths {
			var each []string
			for _, v := range runs[i] {
				each = append(each, fmt.Sprintf("%.0f", v))
			}
			med := median(slices.Clone(runs[i]))
			fmt.Fprintf(w, "%-8s %-9s %12.0f %10.2f %11.2f   %s\n", bytesLabel(size), p.name, med, med*float64(size)/1e6,
				median(slices.Clone(cpu[i])), strings.Join(each, " "))
		}
		for i := 1; i < len(paths); i++ {
			var text []string
			for _, r := range ratios[i] {
				text = append(text, fmt.Sprintf("%.2f", r))
			}
			fmt.Fprintf(w, "%-8s ratio %s/echo: %.2f (median of the rounds' ratios: %s)\n",
				bytesLabel(size), paths[i].name, median(slices.Clone(ratios[i])), strings.Join(text, " "))
		}
	}
	fmt.Fprintf(w, "(took %s)\n\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// median returns the median of v (which it sorts).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func bytesLabel(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%d KB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

func reportIdle(w io.Writer, o idleOptions) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fmt.Fprintf(w, "== idle clients: one external server in its own process, raw gorilla clients from %d source addresses\n", len(o.Sources))
	start := time.Now()
	r, err := measureIdle(ctx, o)
	if err != nil {
		return err
	}
	if r.Clients < r.Requested {
		fmt.Fprintf(w, "NOTE: %d clients requested; RLIMIT_NOFILE hard limit is %d here, so one server process can hold at most %d\n",
			r.Requested, r.Limit, r.Clients)
	}
	fmt.Fprintf(w, "clients connected      %d (in %s)\n", r.Clients, r.DialTime.Round(time.Millisecond))
	fmt.Fprintf(w, "server VmRSS           %.1f MiB with none, %.1f MiB with all (after GC + FreeOSMemory)\n",
		float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20))
	per := r.PerClient()
	fmt.Fprintf(w, "resident per client    %.0f bytes = %.2f KiB   (target <= 16 KiB: %.2fx of target)\n", per, per/1024, per/16384)
	fmt.Fprintf(w, "  of which (runtime, per client): heap in use %.0f B (%.1f objects), goroutine stacks %.0f B (%.2f goroutines), span metadata %.0f B, other runtime %.0f B\n",
		r.delta(func(s serverStats) uint64 { return s.HeapInuse }),
		r.delta(func(s serverStats) uint64 { return s.HeapObjects }),
		r.delta(func(s serverStats) uint64 { return s.StackInuse }),
		r.delta(func(s serverStats) uint64 { return uint64(s.Goroutines) }),
		r.delta(func(s serverStats) uint64 { return s.MSpanInuse }),
		r.delta(func(s serverStats) uint64 { return s.OtherRuntime }))
	if o.Profile != "" {
		fmt.Fprintf(w, "heap profile           %s (go tool pprof -sample_index=inuse_space -top %s)\n", o.Profile, o.Profile)
	}
	fmt.Fprintf(w, "(took %s)\n\n", time.Since(start).Round(time.Millisecond))
	return nil
}
