package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudrift/cloudrift/bench/internal/child"
	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/backoff"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/registry/embedded"
)

// The idle-clients measurement runs in three kinds of process, all this
// binary: the parent (measureIdle) starts one server process
// (serveIdle: one external server, nothing else) and one or more dialer
// processes (dialIdle) that hold the idle WebSocket clients, so the
// server's resident memory holds only the server's side of each
// connection. Parent and children talk in lines over the children's stdin
// and stdout; a child whose stdin closes exits.

// fdReserve is how many descriptors a process keeps for itself (stdio,
// the poller, the listener, ...) besides its sockets.
const fdReserve = 32

// raiseNoFile raises RLIMIT_NOFILE's soft limit to its hard limit and
// returns it.
func raiseNoFile() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			return 0, fmt.Errorf("setrlimit: %w", err)
		}
	}
	return r.Cur, nil
}

// serverStats is what the server process reports after a GC settle.
type serverStats struct {
	Clients      int
	Goroutines   int
	HeapInuse    uint64
	HeapObjects  uint64
	StackInuse   uint64
	MSpanInuse   uint64
	OtherRuntime uint64 // MCache + BuckHash + GC metadata + other runtime Sys
	Sys          uint64
}

// serveIdle is the server process: one external server on loopback that
// holds up to maxClients clients and pings them rarely. It prints
// "addr HOST:PORT", then answers each stdin line: "gc" (collect, return
// freed memory to the OS, print "stats {json}") or "heap PATH" (write a
// heap profile, print "ok"). It exits when stdin closes.
func serveIdle(args []string) error {
	fs := newFlagSet("serve-idle")
	maxClients := fs.Int("max", 25000, "maximum clients")
	profRate := fs.Int("memprofilerate", 0, "runtime.MemProfileRate (0: Go's default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *profRate > 0 {
		runtime.MemProfileRate = *profRate
	}
	if _, err := raiseNoFile(); err != nil {
		return err
	}
	sys := &config.System{
		System: "benchidle",
		Secret: "bench-idle-secret-of-sufficient-length",
		Groups: []config.Group{{
			Name: "gate", Visibility: config.External,
			Clients: config.Clients{
				MaxClients: *maxClients,
				// Idle means idle: the server pings at a third of this,
				// so no ping traffic during the measurement.
				ReadTimeout: config.Duration(10 * time.Minute),
			},
		}},
	}
	if err := sys.Validate(); err != nil {
		return err
	}
	conn := embedded.NewHub().Connector()
	defer conn.Close()
	s, err := cluster.New(cluster.Options{System: sys, Group: "gate", ID: "gate-1", Registry: conn, Plugins: []plugins.Plugin{}})
	if err != nil {
		return err
	}
	if err := s.Start(context.Background()); err != nil {
		return err
	}
	defer s.Close()
	fmt.Printf("addr %s\n", s.Addr())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(in.Text()), " ")
		switch cmd {
		case "gc":
			st := settle()
			st.Clients = s.Stats().Clients
			b, _ := json.Marshal(st)
			fmt.Printf("stats %s\n", b)
		case "heap":
			runtime.GC()
			err := writeHeapProfile(arg)
			if err != nil {
				fmt.Printf("error %v\n", err)
				continue
			}
			fmt.Println("ok")
		default:
			fmt.Printf("error unknown command %q\n", cmd)
		}
	}
	return in.Err()
}

// settle collects garbage, returns free memory to the OS and reports the
// runtime's memory figures.
func settle() serverStats {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return serverStats{
		Goroutines:   runtime.NumGoroutine(),
		HeapInuse:    m.HeapInuse,
		HeapObjects:  m.HeapObjects,
		StackInuse:   m.StackInuse,
		MSpanInuse:   m.MSpanInuse,
		OtherRuntime: m.MCacheInuse + m.BuckHashSys + m.GCSys + m.OtherSys,
		Sys:          m.Sys,
	}
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// dialIdle is a dialer process: it opens n WebSocket clients to url,
// round-robin over the source addresses, waits for each one's welcome,
// prints "ready N" (or "error ..." and fails), then holds the clients
// without reading until stdin closes.
func dialIdle(args []string) error {
	fs := newFlagSet("dial-idle")
	url := fs.String("url", "", "the server's WebSocket URL")
	n := fs.Int("n", 0, "clients to open")
	sources := fs.String("sources", "127.0.0.1", "comma-separated source addresses")
	workers := fs.Int("workers", 32, "concurrent dials")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := raiseNoFile(); err != nil {
		return err
	}
	var dialers []*websocket.Dialer
	for _, src := range strings.Split(*sources, ",") {
		ip := net.ParseIP(strings.TrimSpace(src))
		if ip == nil {
			return fmt.Errorf("bad source address %q", src)
		}
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
		dialers = append(dialers, &websocket.Dialer{
			NetDialContext:   nd.DialContext,
			HandshakeTimeout: 10 * time.Second,
			// The client side is not measured; keep it small anyway.
			ReadBufferSize:  256,
			WriteBufferSize: 256,
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	conns := make([]*websocket.Conn, *n)
	next := make(chan int)
	errs := make(chan error, *workers)
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := dialOne(ctx, dialers[i%len(dialers)], *url)
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					cancel()
					return
				}
				conns[i] = c
			}
		}()
	}
	func() {
		defer close(next)
		for i := range *n {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	select {
	case err := <-errs:
		fmt.Printf("error %v\n", err)
		return err
	default:
	}
	if ctx.Err() != nil {
		fmt.Printf("error %v\n", ctx.Err())
		return ctx.Err()
	}
	fmt.Printf("ready %d\n", *n)
	io.Copy(io.Discard, os.Stdin) // hold the clients until stdin closes
	for _, c := range conns {
		c.NetConn().Close()
	}
	return nil
}

// dialOne opens one client and reads its welcome.
func dialOne(ctx context.Context, d *websocket.Dialer, url string) (*websocket.Conn, error) {
	c, resp, err := d.DialContext(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := c.ReadMessage()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("welcome: %w", err)
	}
	f, err := protocol.DecodeWS(msg)
	if err != nil || f.Kind != protocol.KindClientWelcome {
		c.Close()
		return nil, fmt.Errorf("welcome: got %d bytes of kind %v (%v): %w", len(msg), f.Kind, err, errPayload)
	}
	c.SetReadDeadline(time.Time{})
	return c, nil
}

// idleResult is one idle-clients measurement.
type idleResult struct {
	Requested, Clients int
	Limit              uint64 // RLIMIT_NOFILE of the processes
	DialTime           time.Duration
	RSSBefore          uint64 // server VmRSS with no client, after a GC settle
	RSSAfter           uint64 // with Clients clients, after a GC settle
	Before, After      serverStats
}

// PerClient returns the server's resident bytes per client.
func (r idleResult) PerClient() float64 {
	return float64(int64(r.RSSAfter)-int64(r.RSSBefore)) / float64(r.Clients)
}

// delta returns (after-before)/clients of one runtime figure.
func (r idleResult) delta(f func(serverStats) uint64) float64 {
	return float64(int64(f(r.After))-int64(f(r.Before))) / float64(r.Clients)
}

// vmRSS reads a process's VmRSS from /proc, in bytes.
func vmRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// idleOptions configure measureIdle.
type idleOptions struct {
	Exe      string   // this binary
	Clients  int      // clients wanted
	PerProc  int      // most clients per dialer process
	Sources  []string // source addresses for the dialers
	Profile  string   // when set, the server writes a heap profile here
	ProfRate int      // the server's runtime.MemProfileRate when profiling
}

// measureIdle starts the server and dialer processes, and reads the
// server's VmRSS with no client and with every client connected, each
// after a GC settle. The client count is capped by RLIMIT_NOFILE: one
// process cannot hold more sockets than its hard limit allows.
func measureIdle(ctx context.Context, o idleOptions) (idleResult, error) {
	res := idleResult{Requested: o.Clients, Clients: o.Clients}
	limit, err := raiseNoFile()
	if err != nil {
		return res, err
	}
	res.Limit = limit
	if room := int(limit) - fdReserve; res.Clients > room {
		res.Clients = room
	}
	perProc := min(o.PerProc, int(limit)-fdReserve)
	srvArgs := []string{"serve-idle", "-max", strconv.Itoa(res.Clients + 100)}
	if o.Profile != "" && o.ProfRate > 0 {
		srvArgs = append(srvArgs, "-memprofilerate", strconv.Itoa(o.ProfRate))
	}
	srv, err := child.Start(o.Exe, srvArgs...)
	if err != nil {
		return res, err
	}
	defer srv.Stop(20 * time.Second)
	addr, err := srv.Expect(ctx, "addr")
	if err != nil {
		return res, err
	}
	gc := func() (serverStats, uint64, error) {
		var st serverStats
		if err := srv.Send("gc"); err != nil {
			return st, 0, err
		}
		line, err := srv.Expect(ctx, "stats")
		if err != nil {
			return st, 0, err
		}
		if err := json.Unmarshal([]byte(line), &st); err != nil {
			return st, 0, err
		}
		rss, err := vmRSS(srv.PID())
		return st, rss, err
	}
	if res.Before, res.RSSBefore, err = gc(); err != nil {
		return res, err
	}
	start := time.Now()
	var dialers []*child.Process
	defer func() {
		for _, d := range dialers {
			d.Stop(20 * time.Second)
		}
	}()
	for left := res.Clients; left > 0; {
		n := min(left, perProc)
		left -= n
		d, err := child.Start(o.Exe, "dial-idle", "-url", "ws://"+addr+"/", "-n", strconv.Itoa(n), "-sources", strings.Join(o.Sources, ","))
		if err != nil {
			return res, err
		}
		dialers = append(dialers, d)
	}
	for _, d := range dialers {
		if _, err := d.Expect(ctx, "ready"); err != nil {
			return res, err
		}
	}
	res.DialTime = time.Since(start)
	// Two settles a second apart: the second sees no leftover of the
	// connection burst (sniff and upgrade goroutines, HTTP buffers).
	if _, _, err = gc(); err != nil {
		return res, err
	}
	if !backoff.Sleep(ctx, time.Second) {
		return res, ctx.Err()
	}
	if res.After, res.RSSAfter, err = gc(); err != nil {
		return res, err
	}
	if res.After.Clients != res.Clients {
		return res, fmt.Errorf("server holds %d clients, want %d: %w", res.After.Clients, res.Clients, child.ErrChild)
	}
	if o.Profile != "" {
		if err := srv.Send("heap", o.Profile); err != nil {
			return res, err
		}
		if l, err := srv.Expect(ctx, "ok"); err != nil {
			return res, fmt.Errorf("heap profile: %v: %w", l, err)
		}
	}
	return res, nil
}
