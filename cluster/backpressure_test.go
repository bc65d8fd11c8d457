package cluster_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
)

// echoTag marks a client message relayGate sends straight back.
const echoTag = 1

// relayGate is an external server's plugin that forwards every client
// message to the upstream server it is linked to, prefixed with the
// client's ID, and counts what the link refused. Messages tagged echoTag
// it sends straight back instead.
type relayGate struct {
	world   atomic.Pointer[remoteBox]
	busy    atomic.Int64 // sends refused with ErrBusy
	downs   atomic.Int64 // links down
	failed  atomic.Int64 // other send errors
	bufPool sync.Pool
}

type remoteBox struct{ plugins.RemoteServer }

func (g *relayGate) ServerConnected(s plugins.RemoteServer) error {
	g.world.Store(&remoteBox{s})
	return nil
}

func (g *relayGate) ServerDisconnected(plugins.RemoteServer, error) error {
	g.downs.Add(1)
	return nil
}

func (g *relayGate) ClientMessage(c plugins.Client, m plugins.Message) error {
	if m.Tag == echoTag {
		return c.Send(m.Tag, m.Payload)
	}
	w := g.world.Load()
	if w == nil {
		return errors.New("relay gate: not linked")
	}
	bp, _ := g.bufPool.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b := binary.BigEndian.AppendUint64((*bp)[:0], c.Ref().ID)
	b = append(b, m.Payload...)
	err := w.Send(m.Tag, b) // Send copies b
	*bp = b
	g.bufPool.Put(bp)
	switch {
	case errors.Is(err, plugins.ErrBusy):
		g.busy.Add(1)
	case err != nil:
		g.failed.Add(1)
	}
	return err
}

// relayWorld is an internal server's plugin that sends each relayed
// message back to the client named in its first 8 bytes. Until hold (when
// not nil) is closed, it holds its link's read loop in the first message.
type relayWorld struct {
	host   plugins.Host
	hold   chan struct{}
	once   sync.Once
	failed atomic.Int64
}

func (w *relayWorld) Start(_ context.Context, h plugins.Host) error {
	w.host = h
	return nil
}

func (w *relayWorld) ServerMessage(s plugins.RemoteServer, m plugins.Message) error {
	if w.hold != nil {
		w.once.Do(func() { <-w.hold })
	}
	ref := plugins.ClientRef{Server: s.ID(), ID: binary.BigEndian.Uint64(m.Payload)}
	if err := w.host.SendToClient(ref, m.Tag, m.Payload[8:]); err != nil {
		w.failed.Add(1)
		return err
	}
	return nil
}

// floodSystem is an external group g1 linked to an internal group g2 with a
// tiny link queue (high-water mark 4 KiB), and clients allowed to send as
// fast as they can.
func floodSystem() *config.System {
	cfg := clientSystem(config.Clients{Rate: 1_000_000, Burst: 1_000_000, MaxMessageBytes: 2048, SendQueueBytes: 8 << 20})
	cfg.Links.MaxFrame = 8 << 10
	cfg.Links.QueueBytes = 8 << 10
	// A stalled write or a silent link takes far longer than the test
	// holds the world's read loop: only the queue is tested.
	cfg.Links.Heartbeat = config.Duration(time.Second)
	cfg.Links.Timeout = config.Duration(30 * time.Second)
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return cfg
}

// One client floods an external server with messages that all go over one
// link with a tiny queue, with no limit on its messages in flight. The
// link must stay up, the flooder's reads must pause (it is held back by
// TCP, not cut off), a bystander on the same link must still be served,
// and every message must come back, in order, with no send refused.
func TestClientFloodPausesReadsAndKeepsLink(t *testing.T) {
	sys := newSystem(t, floodSystem())
	world := &relayWorld{hold: make(chan struct{})}
	gate := &relayGate{}
	sys.StartServer("g2", "b1", world)
	a1 := sys.StartServer("g1", "a1", gate)
	testutil.WaitFor(t, "linked", func() bool { return gate.world.Load() != nil })

	bystander := a1.DialWith(client.Options{QueueSize: 16})
	flooder := a1.DialWith(client.Options{QueueSize: 4096, WriteTimeout: time.Minute})
	const n = 3000
	payload := make([]byte, 1024)
	sendErr := make(chan error, 1)
	go func() {
		for i := range n {
			binary.BigEndian.PutUint32(payload, uint32(i))
			if err := flooder.Send(7, payload); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()

	// The world holds its read loop in the first message, so the link's
	// queue fills and the gate must stop reading the flooder.
	id := flooder.Ref().ID
	testutil.WaitFor(t, "the flooder's reads paused", func() bool { return cluster.ClientReadPauses(a1.Cluster(), id) > 0 })
	if err := bystander.Send(9, []byte("bystander-0")); err != nil {
		t.Fatal(err)
	}
	close(world.hold)

	got := 0
	for got < n {
		select {
		case m, ok := <-flooder.Messages():
			if !ok {
				t.Fatalf("flooder ended after %d replies: %v", got, flooder.Err())
			}
			if m.Tag != 7 || len(m.Payload) != 1024 || binary.BigEndian.Uint32(m.Payload) != uint32(got) {
				t.Fatalf("reply %d: tag %d, %d bytes, number %d", got, m.Tag, len(m.Payload), binary.BigEndian.Uint32(m.Payload))
			}
			got++
		case <-time.After(testutil.Patience):
			t.Fatalf("flooder: %d of %d replies", got, n)
		}
	}
	if err := <-sendErr; err != nil {
		t.Fatalf("flooder's send: %v", err)
	}
	for i, want := range []string{"bystander-0", "bystander-1"} {
		if i == 1 {
			if err := bystander.Send(9, []byte(want)); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case m := <-bystander.Messages():
			if m.Tag != 9 || string(m.Payload) != want {
				t.Fatalf("bystander got tag %d %q, want %q", m.Tag, m.Payload, want)
			}
		case <-time.After(testutil.Patience):
			t.Fatalf("bystander: no reply %q", want)
		}
	}
	if d, b, f, wf := gate.downs.Load(), gate.busy.Load(), gate.failed.Load(), world.failed.Load(); d+b+f+wf != 0 {
		t.Fatalf("links down %d, gate sends refused %d, failed %d, world sends failed %d; want none", d, b, f, wf)
	}
	if st := a1.Cluster().Stats(); st.ClientPauses == 0 || st.BusySends == 0 {
		t.Fatalf("gate stats %+v, want busy sends and client pauses counted", st)
	}
	// Logs stay bounded: hundreds of busy spells are logged through a
	// sampler, at most 5 lines per server and peer in its window (both
	// servers here), not one each.
	if n := strings.Count(sys.Logs(), "link busy"); n == 0 || n > 10 {
		t.Fatalf("%d \"link busy\" log lines for %d read pauses, want 1 to 10 (sampled)", n, cluster.ClientReadPauses(a1.Cluster(), id))
	}
}

// A link's read loop whose hook answers over a busy link pauses (at most
// half of links.timeout at a time) instead of filling the queue: the
// answers are never refused, the link stays up, and everything arrives in
// order. A sender that is not a read loop meets ErrBusy and retries.
func TestLinkReadLoopPausesForBusyLink(t *testing.T) {
	cfg := floodSystem()
	l := startLinked(t, cfg)
	block := make(chan struct{})
	var once sync.Once
	l.r1.setOnMessage(func(plugins.RemoteServer, plugins.Message) error {
		once.Do(func() { <-block }) // a1 stops reading its link
		return nil
	})
	l.r2.setOnMessage(func(s plugins.RemoteServer, m plugins.Message) error {
		return s.Send(m.Tag, m.Payload) // b1 answers on its link read loop
	})
	p := l.r1.peer("b1")
	const n = 200
	sent := make(chan error, 1)
	go func() {
		payload := make([]byte, 1024)
		for i := 0; i < n; {
			binary.BigEndian.PutUint32(payload, uint32(i))
			err := p.Send(uint16(i), payload)
			if errors.Is(err, plugins.ErrBusy) {
				time.Sleep(time.Millisecond)
				continue
			}
			if err != nil {
				sent <- err
				return
			}
			i++
		}
		sent <- nil
	}()
	b1 := l.b1.Cluster()
	testutil.WaitFor(t, "b1's link read loop paused", func() bool { return b1.Stats().LinkPauses > 0 })
	close(block)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "every answer", func() bool { return len(l.r1.messages("b1")) == n })
	for i, m := range l.r1.messages("b1") {
		if m.Tag != uint16(i) || binary.BigEndian.Uint32(m.Payload) != uint32(i) {
			t.Fatalf("answer %d: tag %d, number %d", i, m.Tag, binary.BigEndian.Uint32(m.Payload))
		}
	}
	if st := b1.Stats(); st.SendsRefused != 0 {
		t.Fatalf("b1 refused %d answers; stats %+v", st.SendsRefused, st)
	}
	if d1, d2 := l.r1.count("disconnected", "b1"), l.r2.count("disconnected", "a1"); d1+d2 != 0 {
		t.Fatalf("the link went down (%d, %d)", d1, d2)
	}
}
