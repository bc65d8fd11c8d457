package cluster_test

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/protocol"
)

// Tests of servers under hostile input, over real sockets: strangers who
// reach a port and send what they like.

const hostileYAML = `
system: hostile
secret: 0123456789abcdef0123456789abcdef
groups:
  - name: lobby
    visibility: external
    connectsTo: [world]
    clients: {path: /play}
  - name: world
    visibility: internal
`

// hostileDial connects to addr from the loopback address 127.0.0.n, so a
// test can play strangers on many source addresses.
func hostileDial(t *testing.T, n int, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(n))}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from 127.0.0.%d: %v", addr, n, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestHandshakeMemoryBound opens many connections that each announce a
// 1 MiB hello and send nothing more: the server must not hold a buffer per
// announced frame, must cap the connections still in their handshake, and
// must still link a good server meanwhile.
func TestHandshakeMemoryBound(t *testing.T) {
	sys := clustertest.Start(t, hostileYAML)
	world := sys.Server("world-1")
	addr := world.Addr()
	before := heapInUse()
	header := protocol.AppendHeader(nil, protocol.KindHello, 0, protocol.DefaultMaxFrame-3)
	const sources, perSource = 10, 20
	var conns []net.Conn
	for src := 2; src < 2+sources; src++ {
		for range perSource {
			c := hostileDial(t, src, addr)
			c.Write(header)
			conns = append(conns, c)
		}
	}
	time.Sleep(300 * time.Millisecond) // let the server read every header
	grown := int64(heapInUse()) - int64(before)
	const bound = 16 << 20 // the 200 announced frames add up to 200 MiB
	if grown > bound {
		t.Fatalf("heap grew by %d bytes for %d announced 1 MiB frames, want at most %d", grown, len(conns), bound)
	}
	// A good server still links (from 127.0.0.1, an address no stranger
	// used).
	sys.AddReplica("world")
	sys.WaitLinked("lobby")
	if st := world.Cluster().Stats(); st.Refused == 0 {
		t.Fatalf("no connection refused: %+v", st)
	}
	logs := sys.Logs()
	for _, want := range []string{`"reason":"frame too large"`} {
		if !strings.Contains(logs, want) {
			t.Fatalf("logs lack %s:\n%s", want, logs)
		}
	}
}

// TestHandshakeCap holds connections that send nothing: past the cap per
// source address the server refuses them at once, with a logged reason.
func TestHandshakeCap(t *testing.T) {
	sys := clustertest.Start(t, hostileYAML)
	world := sys.Server("world-1")
	addr := world.Addr()
	var silent []net.Conn
	for range 40 {
		silent = append(silent, hostileDial(t, 2, addr))
	}
	// Those over the cap are refused at once, with a reason.
	refused := 0
	for _, c := range silent {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		f, err := protocol.NewReader(c, protocol.MaxHandshakeFrame).Next()
		if err != nil {
			continue // held, waiting for a hello
		}
		var cl protocol.Close
		if f.Kind != protocol.KindClose || cl.Decode(f.Payload) != nil || cl.Reason != protocol.ReasonServerFull {
			t.Fatalf("a refused connection got %s %+v, want a close with %s", f.Kind, cl, protocol.ReasonServerFull)
		}
		refused++
	}
	if refused == 0 || refused == len(silent) {
		t.Fatalf("%d of %d silent connections from one address refused at once, want some but not all", refused, len(silent))
	}
	sys.WaitFor("the refusal logged", func() bool { return strings.Contains(sys.Logs(), "from this address") })
	// Another address is not affected: a good server links.
	sys.AddReplica("world")
	sys.WaitLinked("lobby")
}

// TestChallengeCarriesNoMAC checks that a stranger's hello earns a nonce,
// never a MAC made with the secret that it could test guesses against,
// and that a wrong auth gets a refusal, not a welcome.
func TestChallengeCarriesNoMAC(t *testing.T) {
	sys := clustertest.Start(t, hostileYAML)
	c := hostileDial(t, 1, sys.Server("world-1").Addr())
	c.SetDeadline(time.Now().Add(5 * time.Second))
	nonce, _ := protocol.NewNonce()
	h := protocol.Hello{Version: protocol.Version, System: "hostile", Group: "lobby", ServerID: "stranger", Incarnation: 1, Nonce: nonce}
	hb := h.AppendTo(nil)
	c.Write(protocol.AppendFrame(nil, protocol.KindHello, 0, hb))
	rd := protocol.NewReader(c, protocol.MaxHandshakeFrame)
	f, err := rd.Next()
	if err != nil || f.Kind != protocol.KindChallenge {
		t.Fatalf("want a challenge: %v %v", f.Kind, err)
	}
	var ch protocol.Challenge
	if err := ch.Decode(f.Payload); err != nil {
		t.Fatalf("the challenge carries more than identity and nonce (%d bytes): %v", len(f.Payload), err)
	}
	if want := 2 + 1 + len(ch.ServerID) + 1 + len(ch.Group) + 8 + 32; len(f.Payload) != want {
		t.Fatalf("the challenge is %d bytes, identity and nonce take %d", len(f.Payload), want)
	}
	if rd.Buffered() != 0 {
		t.Fatalf("%d more bytes came before this side proved anything", rd.Buffered())
	}
	wrong := protocol.Auth{MAC: protocol.AuthMAC([]byte("a guess"), hb, f.Payload)}
	c.Write(protocol.AppendFrame(nil, protocol.KindAuth, 0, wrong.AppendTo(nil)))
	f, err = rd.Next()
	if err != nil || f.Kind != protocol.KindClose {
		t.Fatalf("want a close after a wrong auth: %v %v", f.Kind, err)
	}
	var cl protocol.Close
	if err := cl.Decode(f.Payload); err != nil || cl.Reason != protocol.ReasonAuth {
		t.Fatalf("close %+v %v, want reason %s", cl, err, protocol.ReasonAuth)
	}
}

// TestRefusalLogsSampled sends 200 garbage connections: the log holds a
// bounded number of lines for them, and a summary with the count.
func TestRefusalLogsSampled(t *testing.T) {
	sys := clustertest.Start(t, hostileYAML)
	world := sys.Server("world-1")
	addr := world.Addr()
	const garbage = 200
	var wg sync.WaitGroup
	for src := 2; src < 6; src++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range garbage / 4 {
				d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(src))}}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.Write([]byte("\xff\xff\xff\xffgarbage"))
				io.Copy(io.Discard, c) // until the server closes
				c.Close()
			}
		}()
	}
	wg.Wait()
	sys.WaitFor("every refusal counted", func() bool { return world.Cluster().Stats().Refused >= garbage })
	world.Kill() // ends the listener's sampling window: the summary is logged
	logs := sys.Logs()
	lines := strings.Count(logs, `"reason":"frame too large"`)
	if lines > 10 {
		t.Fatalf("%d log lines for %d garbage connections, want at most 10", lines, garbage)
	}
	if !strings.Contains(logs, fmt.Sprintf(`"suppressed":%d`, garbage-lines+1)) {
		t.Fatalf("no summary counting the %d unlogged refusals:\n%s", garbage-lines+1, logs)
	}
}
