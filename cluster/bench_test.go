package cluster_test

import (
	"net"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
)

// BenchmarkLink64 measures one server-to-server link carrying 64-byte
// messages, and beside it, in the same run, a raw-TCP baseline with the same
// framing and no runtime logic, and the same link over mutual TLS
// (links.tls). bench/link.sh runs it and prints the ratio.
//
//	go test -run '^$' -bench BenchmarkLink64 -count 5 ./cluster/
func BenchmarkLink64(b *testing.B) {
	b.Run("raw-tcp", benchRawTCP)
	b.Run("runtime", func(b *testing.B) { benchRuntime(b, twoGroups()) })
	b.Run("tls-runtime", func(b *testing.B) {
		cfg := twoGroups()
		cfg.Links.TLS = newTestCA(b, b.TempDir(), "bench").linkTLS(b, "server")
		benchRuntime(b, cfg)
	})
}

const benchPayload = 64

// benchRawTCP: a bare writer appends frames with protocol.AppendFrame into
// 64 KiB batches and writes them; a bare reader parses them with
// protocol.Reader and counts. This is the ceiling for the framing itself.
func benchRawTCP(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		rd := protocol.NewReader(c, protocol.DefaultMaxFrame)
		var n int
		for n < b.N {
			f, err := rd.Next()
			if err != nil {
				done <- err
				return
			}
			if f.Kind == protocol.KindUser {
				n++
			}
		}
		done <- nil
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	payload := make([]byte, benchPayload)
	buf := make([]byte, 0, 64<<10)
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = protocol.AppendFrame(buf, protocol.KindUser, 1, payload)
		if len(buf) >= 64<<10-protocol.HeaderSize-benchPayload {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
			buf = buf[:0]
		}
	}
	if len(buf) > 0 {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// counter is a plugin that counts the messages it receives.
type counter struct{ n atomic.Int64 }

func (c *counter) ServerMessage(_ plugins.RemoteServer, m plugins.Message) error {
	if len(m.Payload) == benchPayload {
		c.n.Add(1)
	}
	return nil
}

// benchRuntime: two servers of cfg (twoGroups) linked through the runtime; the sender calls the
// public RemoteServer.Send, the receiver counts in its ServerMessage hook.
// The sender keeps at most window messages in flight so the bounded
// outbound queue never overflows, as a well-behaved plugin would.
func benchRuntime(b *testing.B, cfg *config.System) {
	cfg.Links.Heartbeat = cfg.Links.Timeout / 2
	sys := newSystem(b, cfg)
	recv := &counter{}
	sys.StartServer("g2", "b1", recv)
	send := newRecorder()
	sys.StartServer("g1", "a1", send)
	testutil.WaitFor(b, "the link", send.connectedTo("b1"))
	peer := send.peer("b1")
	payload := make([]byte, benchPayload)
	const window = 32 << 10 // messages in flight, about 2.3 MB of frames
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i&1023 == 0 {
			for int64(i)-recv.n.Load() > window {
				runtime.Gosched()
			}
		}
		if err := peer.Send(1, payload); err != nil {
			b.Fatal(err)
		}
	}
	for recv.n.Load() < int64(b.N) {
		runtime.Gosched()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
