package main

import (
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/examples/openworld/bots"
)

func TestParseMiB(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
	}{
		{"12.5MiB", 12.5}, {"512KiB", 0.5}, {"1.5GiB", 1536}, {"1048576B", 1}, {"2MB", 2e6 / (1 << 20)},
	} {
		got, err := parseMiB(c.in)
		if err != nil || got != c.want {
			t.Errorf("parseMiB(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "12", "xMiB"} {
		if _, err := parseMiB(bad); err == nil {
			t.Errorf("parseMiB(%q): no error", bad)
		}
	}
}

func TestSummariseUsage(t *testing.T) {
	u := summariseUsage("world", "30MiB / 23.4GiB\t1.50%\n10MiB / 23.4GiB\t0.50%\ngarbage\n20MiB / 23.4GiB\t2.00%\n40MiB / 23.4GiB\t--\n")
	if u.n != 4 || u.min != 10 || u.med != 25 || u.max != 40 || u.cpu != 4 {
		t.Errorf("summariseUsage = %+v; want 4 containers, 10/25/40 MiB, 4%% CPU", u)
	}
	if u := summariseUsage("x", ""); u.n != 0 {
		t.Errorf("empty stats: %+v", u)
	}
}

func TestSummariseHold(t *testing.T) {
	r := func(swarm int, sent float64, samples uint64, p50, p99 time.Duration) swarmReport {
		return swarmReport{swarm: swarm, p: bots.Progress{SentRate: sent, ReceivedRate: 2 * sent, RTT: bots.RTT{Samples: samples, P50: p50, P99: p99}}}
	}
	sent, recv, p50, p99, n := summariseHold([]swarmReport{
		r(0, 10, 100, time.Millisecond, 5*time.Millisecond),
		r(0, 30, 100, 3*time.Millisecond, 9*time.Millisecond),
		r(1, 5, 200, 2*time.Millisecond, 4*time.Millisecond),
	})
	if sent != 25 || recv != 50 || p50 != 2*time.Millisecond || p99 != 9*time.Millisecond || n != 400 {
		t.Errorf("summariseHold = %v %v %v %v %v; want 25 50 2ms 9ms 400", sent, recv, p50, p99, n)
	}
	if got := connectedNow([]swarmReport{{swarm: 0, p: bots.Progress{Connected: 3}}, {swarm: 0, p: bots.Progress{Connected: 5}}, {swarm: 1, p: bots.Progress{Connected: 2}}}); got != 7 {
		t.Errorf("connectedNow = %d; want 7 (each swarm's latest)", got)
	}
}

func TestRotate(t *testing.T) {
	got := rotate([]string{"a", "b", "c"}, 4)
	if len(got) != 3 || got[0] != "b" || got[2] != "a" {
		t.Errorf("rotate = %v; want [b c a]", got)
	}
}
