package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/protocol"
)

// Benchmarks of game clients through an external server (g1, relayGate) to
// an internal one (g2, relayWorld) and back, 50 SDK clients in this
// process, 1 KB messages. bench/RESULTS.md has the figures.
//
//	go test -run '^$' -bench 'Relay1K|Flood' -benchtime 100000x -count 3 ./cluster/

const (
	benchClients = 50
	benchWindow  = 32 // messages in flight per client, when bounded
	benchSize    = 1024
	relayTag     = 2
)

// benchRelayRig is a running gate and world with the default link limits
// (8 MiB queue, 5 s timeout) and client limits that measure the runtime,
// not its rate limiter.
type benchRelayRig struct {
	sys   *clustertest.System
	gate  *relayGate
	world *relayWorld
	a1    *clustertest.Server
}

func startBenchRelay(b *testing.B, socketDir string) *benchRelayRig {
	cfg := clientSystem(config.Clients{Rate: 1_000_000, Burst: 1_000_000, SendQueueBytes: 4 << 20,
		ReadTimeout: config.Duration(5 * time.Minute)})
	cfg.Links.Heartbeat = config.Duration(time.Second)
	cfg.Links.Timeout = config.Duration(5 * time.Second)
	cfg.Links.MaxFrame = protocol.DefaultMaxFrame
	cfg.Links.QueueBytes = config.DefaultQueueBytes
	cfg.Links.SocketDir = socketDir
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	r := &benchRelayRig{
		sys:   clustertest.NewSystem(b, cfg, clustertest.WithLogLevel(zerolog.InfoLevel)),
		gate:  &relayGate{},
		world: &relayWorld{},
	}
	r.sys.StartServer("g2", "b1", r.world)
	r.a1 = r.sys.StartServer("g1", "a1", r.gate)
	deadline := time.Now().Add(10 * time.Second)
	for r.gate.world.Load() == nil {
		if time.Now().After(deadline) {
			b.Fatal("gate and world did not link")
		}
		time.Sleep(time.Millisecond)
	}
	return r
}

// pipe is one client of a benchmark: a WebSocket connection whose
// messages this side frames itself and writes batchFrames to a write(2),
// so that the client costs little beside the servers; replies are read
// through gorilla/websocket with a 64 KiB buffer.
type pipe struct {
	ws       *websocket.Conn
	nc       net.Conn
	quota    int64
	sent     int64 // the writer's
	received atomic.Int64
	bad      atomic.Int64
	frame    []byte // one masked client frame of the benchmark's message
	buf      []byte
}

// batchFrames is how many frames a client writes at once.
const batchFrames = 16

// dialPipe connects one client and reads its welcome.
func (r *benchRelayRig) dialPipe(b *testing.B, tag uint16, quota int64) *pipe {
	d := websocket.Dialer{ReadBufferSize: 64 << 10, WriteBufferSize: 4 << 10}
	ws, _, err := d.Dial(r.a1.URL(), nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := ws.ReadMessage(); err != nil { // the welcome
		b.Fatal(err)
	}
	msg := protocol.AppendWS(nil, protocol.KindUser, tag, make([]byte, benchSize))
	// Final binary frame, masked with a zero key (which leaves the payload
	// as it is), a 16-bit length (RFC 6455 section 5.2).
	frame := append([]byte{0x82, 0x80 | 126, byte(len(msg) >> 8), byte(len(msg)), 0, 0, 0, 0}, msg...)
	return &pipe{ws: ws, nc: ws.NetConn(), quota: quota, frame: frame}
}

// write sends the next n messages (fewer at the end of the quota) in one
// write(2).
func (p *pipe) write(n int64) error {
	n = min(n, p.quota-p.sent)
	p.buf = p.buf[:0]
	for range n {
		p.buf = append(p.buf, p.frame...)
	}
	p.sent += n
	if len(p.buf) == 0 {
		return nil
	}
	_, err := p.nc.Write(p.buf)
	return err
}

// readAll reads replies until the quota has come back; when refill is
// set, it sends the next batch each time a batch of replies arrived.
func (p *pipe) readAll(tag uint16, refill bool) error {
	for p.received.Load() < p.quota {
		_, m, err := p.ws.ReadMessage()
		if err != nil {
			return err
		}
		f, err := protocol.DecodeWS(m)
		if err != nil || f.Kind != protocol.KindUser || f.Tag != tag || len(f.Payload) != benchSize {
			p.bad.Add(1)
		}
		if n := p.received.Add(1); refill && n%batchFrames == 0 {
			if err := p.write(batchFrames); err != nil {
				return err
			}
		}
	}
	return nil
}

// runPipes runs benchClients clients sharing total messages, each with a
// window of benchWindow (refill) or none (flood: the writer sends its
// whole share back to back), until every reply is back.
func (r *benchRelayRig) runPipes(b *testing.B, tag uint16, total int, refill bool) {
	ps := make([]*pipe, benchClients)
	for i := range ps {
		q := int64(total / benchClients)
		if i < total%benchClients {
			q++
		}
		ps[i] = r.dialPipe(b, tag, q)
	}
	defer func() {
		for _, p := range ps {
			p.ws.Close()
		}
	}()
	b.SetBytes(benchSize)
	cpu0 := processCPU()
	r0, w0 := processSyscalls()
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(ps))
	for _, p := range ps {
		p.nc.SetDeadline(time.Now().Add(2 * time.Minute))
		if refill {
			if err := p.write(benchWindow); err != nil {
				b.Fatal(err)
			}
		} else {
			wg.Go(func() {
				for p.sent < p.quota {
					if err := p.write(batchFrames); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Go(func() {
			if err := p.readAll(tag, refill); err != nil {
				errs <- fmt.Errorf("after %d of %d replies: %w", p.received.Load(), p.quota, err)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	cpu := processCPU() - cpu0
	r1, w1 := processSyscalls()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	for i, p := range ps {
		if n := p.bad.Load(); n > 0 {
			b.Fatalf("client %d: %d wrong replies", i, n)
		}
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "msgs/s")
	// The process's CPU time (servers and clients) per message: steadier
	// than msgs/s on a machine shared with other work.
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(total), "cpu-µs/msg")
	// The process's read and write system calls (failed ones included)
	// per message, from /proc/self/io; 0 where there is none.
	b.ReportMetric(float64(r1-r0)/float64(total), "reads/msg")
	b.ReportMetric(float64(w1-w0)/float64(total), "writes/msg")
}

// processSyscalls returns this process's read and write system calls so
// far (Linux: syscr and syscw of /proc/self/io), or zeros.
func processSyscalls() (reads, writes uint64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
		n, _ := strconv.ParseUint(v, 10, 64)
		switch k {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes
}

// processCPU returns the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRelay1K: 50 clients, 32 messages of 1 KB in flight each; the
// single-hop echo (the gate answers) beside the relay through the world,
// each with the client sockets read in chunks (the default) and directly
// (plain-reads, as before chunked reads), in the same run; the relay with
// gate and world linked over the link socket (the default on one host)
// and over loopback TCP (relay-tcp, as between hosts).
func BenchmarkRelay1K(b *testing.B) {
	r, tcp := startBenchRelay(b, ""), startBenchRelay(b, config.SocketDirOff)
	for _, c := range []struct {
		name  string
		rig   *benchRelayRig
		tag   uint16
		plain bool
	}{
		{"echo-plain-reads", r, echoTag, true},
		{"echo", r, echoTag, false},
		{"relay-plain-reads", r, relayTag, true},
		{"relay", r, relayTag, false},
		{"relay-tcp", tcp, relayTag, false},
	} {
		r := c.rig
		b.Run(c.name, func(b *testing.B) {
			cluster.SetPlainClientReads(r.a1.Cluster(), c.plain)
			defer cluster.SetPlainClientReads(r.a1.Cluster(), false)
			r.runPipes(b, c.tag, b.N, true)
		})
	}
}

// BenchmarkFlood relays b.N messages of 1 KB from 50 clients that each
// send their share back to back, with no limit on messages in flight
// (flood), beside the same count with 32 in flight per client (window-32).
// It fails when a link goes down or a message is lost, and reports the
// peak heap (sampled every 10 ms), the process's peak RSS (VmHWM, reset
// first), the log lines written, and the backpressure counters.
func BenchmarkFlood(b *testing.B) {
	r := startBenchRelay(b, "")
	b.Run("window-32", func(b *testing.B) {
		r.measure(b, func() { r.runPipes(b, relayTag, b.N, true) })
	})
	b.Run("flood", func(b *testing.B) {
		r.measure(b, func() { r.runPipes(b, relayTag, b.N, false) })
	})
}

// measure runs f and reports what it cost beyond time, and fails when a
// link went down or a send was refused or failed meanwhile.
func (r *benchRelayRig) measure(b *testing.B, f func()) {
	gate := r.a1.Cluster()
	st0 := gate.Stats()
	downs0, busy0, failed0, wfailed0 := r.gate.downs.Load(), r.gate.busy.Load(), r.gate.failed.Load(), r.world.failed.Load()
	lines0 := strings.Count(r.sys.Logs(), "\n")
	resetPeakRSS()
	var peakHeap atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	f()
	cancel()
	<-sampled
	st := gate.Stats()
	downs, busy, failed, wfailed := r.gate.downs.Load()-downs0, r.gate.busy.Load()-busy0, r.gate.failed.Load()-failed0, r.world.failed.Load()-wfailed0
	if downs+busy+failed+wfailed != 0 {
		b.Fatalf("links down %d, gate sends refused %d, failed %d, world sends failed %d; want none", downs, busy, failed, wfailed)
	}
	b.ReportMetric(float64(peakHeap.Load())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-rss-MiB")
	b.ReportMetric(float64(strings.Count(r.sys.Logs(), "\n")-lines0), "log-lines")
	b.ReportMetric(float64(st.ClientPauses-st0.ClientPauses), "pauses")
	b.ReportMetric(float64(st.BusySends-st0.BusySends), "busy-sends")
}

// resetPeakRSS resets the process's VmHWM (Linux: clear_refs 5); where it
// cannot, peakRSS reports the peak since the process started.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS returns the process's VmHWM in bytes, or 0 where unknown.
func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			f := strings.Fields(string(rest))
			if len(f) >= 1 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
