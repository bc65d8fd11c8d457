package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/config"
)

// TestMain lets the test binary serve as the idle measurement's child
// processes, as the command's binary does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "serve-idle" || os.Args[1] == "dial-idle") {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// startRig starts a relay rig whose link runs over the link socket
// (socketDir ""), or over TCP (config.SocketDirOff).
func startRig(tb testing.TB, socketDir string) *relayRig {
	tb.Helper()
	rig, err := startRelayRig(1_000_000, socketDir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(rig.Close)
	return rig
}

func TestPercentile(t *testing.T) {
	d := make([]time.Duration, 100)
	for i := range d {
		d[i] = time.Duration(i + 1)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 51}, {99, 100}, {1, 2}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("percentile(1..100, %v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
}

// TestRoundTrips checks the relay and echo paths end to end: every reply
// is the message sent, on the path asked for.
func TestRoundTrips(t *testing.T) {
	rig := startRig(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := measureRoundTrips(ctx, rig.URL, 50, 5, 64)
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string][]time.Duration{"echo": r.Echo, "relay": r.Relay} {
		if len(d) != 50 {
			t.Errorf("%s: %d samples, want 50", name, len(d))
		}
		if !slices.IsSorted(d) || len(d) > 0 && d[0] <= 0 {
			t.Errorf("%s: samples not sorted or not positive: %v", name, d)
		}
	}
}

// TestPipeline checks that every message of a pipelined run comes back
// exactly once, on both paths and both sizes.
func TestPipeline(t *testing.T) {
	rig := startRig(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tag := range []uint16{tagEcho, tagRelay} {
		for _, size := range []int{64, 1024} {
			p, err := dialPipeline(ctx, rig.URL, 3, size, tag)
			if err != nil {
				t.Fatal(err)
			}
			err = p.runN(ctx, 4, 301)
			got := p.received()
			p.Close()
			if err != nil {
				t.Fatalf("tag %d, %d bytes: %v", tag, size, err)
			}
			if got != 301 {
				t.Errorf("tag %d, %d bytes: %d replies, want 301", tag, size, got)
			}
		}
	}
	r, err := measureThroughput(ctx, rig.URL, 2, 4, 64, tagRelay, 20*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Messages <= 0 || r.Elapsed < 100*time.Millisecond || r.CPU <= 0 {
		t.Errorf("measureThroughput = %+v, want messages and CPU time counted over at least 100ms", r)
	}
}

// TestReportThroughput runs a short throughput report on a rig linked
// over the link socket and one linked over TCP: every path and ratio is
// reported.
func TestReportThroughput(t *testing.T) {
	unix, tcp := startRig(t, ""), startRig(t, config.SocketDirOff)
	var out strings.Builder
	if err := reportThroughput(&out, unix.URL, tcp.URL, 2, 4, 1, 10*time.Millisecond, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"64 B     echo", "64 B     relay ", "64 B     relay-tcp", "1 KB     relay-tcp",
		"1 KB     ratio relay/echo: ", "1 KB     ratio relay-tcp/echo: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the report:\n%s", want, out.String())
		}
	}
}

// TestIdleSmall runs the idle measurement's processes with a few clients
// from two source addresses and two dialer processes.
func TestIdleSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := measureIdle(ctx, idleOptions{Exe: os.Args[0], Clients: 40, PerProc: 25, Sources: []string{"127.0.0.2", "127.0.0.3"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Clients != 40 || r.After.Clients != 40 || r.Before.Clients != 0 {
		t.Errorf("clients: measured %d, server held %d before and %d after, want 40, 0, 40", r.Clients, r.Before.Clients, r.After.Clients)
	}
	if r.RSSBefore == 0 || r.RSSAfter == 0 || r.After.Goroutines <= r.Before.Goroutines {
		t.Errorf("implausible figures: %+v", r)
	}
}

// BenchmarkRoundTrip runs b.N echo and b.N relay round trips, alternating,
// and reports the percentiles of each and the ratio of the p50s. ns/op is
// the time of one echo plus one relay.
//
//	go test -run '^$' -bench RoundTrip -benchtime 20000x ./bench/clients/
func BenchmarkRoundTrip(b *testing.B) {
	rig := startRig(b, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b.ResetTimer()
	r, err := measureRoundTrips(ctx, rig.URL, b.N, 200, 64)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	e50, r50 := percentile(r.Echo, 50), percentile(r.Relay, 50)
	b.ReportMetric(float64(e50), "echo-p50-ns")
	b.ReportMetric(float64(percentile(r.Echo, 99)), "echo-p99-ns")
	b.ReportMetric(float64(r50), "relay-p50-ns")
	b.ReportMetric(float64(percentile(r.Relay, 99)), "relay-p99-ns")
	b.ReportMetric(float64(r50)/float64(e50), "p50-ratio")
}

// BenchmarkThroughput sends b.N messages over 50 clients with 32 in flight
// each, echo beside relay, 64-byte and 1 KB payloads. MB/s counts each
// round trip's payload once.
//
//	go test -run '^$' -bench Throughput -benchtime 3s ./bench/clients/
func BenchmarkThroughput(b *testing.B) {
	rig := startRig(b, "")
	for _, size := range []int{64, 1024} {
		for _, path := range []struct {
			name string
			tag  uint16
		}{{"echo", tagEcho}, {"relay", tagRelay}} {
			b.Run(fmt.Sprintf("%s/%s", bytesLabel(size), path.name), func(b *testing.B) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				p, err := dialPipeline(ctx, rig.URL, 50, size, path.tag)
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				b.SetBytes(int64(size))
				b.ResetTimer()
				if err := p.runN(ctx, 32, b.N); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// BenchmarkIdleClients measures the server's resident memory per idle
// client with 20,000 clients (fewer when RLIMIT_NOFILE is lower). It is
// opt-in: it runs only with CLOUDRIFT_BENCH_IDLE=1, once.
//
//	CLOUDRIFT_BENCH_IDLE=1 go test -run '^$' -bench IdleClients -benchtime 1x ./bench/clients/
func BenchmarkIdleClients(b *testing.B) {
	if os.Getenv("CLOUDRIFT_BENCH_IDLE") != "1" {
		b.Skip("set CLOUDRIFT_BENCH_IDLE=1 to run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var last idleResult
	for range b.N {
		r, err := measureIdle(ctx, idleOptions{
			Exe: os.Args[0], Clients: 20000, PerProc: 10000,
			Sources: []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8", "127.0.0.9"},
		})
		if err != nil {
			b.Fatal(err)
		}
		last = r
	}
	b.ReportMetric(last.PerClient(), "B/client")
	b.ReportMetric(float64(last.Clients), "clients")
}
