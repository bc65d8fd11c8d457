package cluster_test

import (
	"errors"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
)

// The tests in this file link b1 of g2 to a peer played by hand (see
// raw_test.go), which misbehaves in ways a real server does not.

// acceptor is b1 of g2, running alone, and the recorder it hosts.
type acceptor struct {
	sys *clustertest.System
	r   *recorder
}

func startAcceptor(t *testing.T) *acceptor {
	t.Helper()
	a := &acceptor{sys: newSystem(t, twoGroups()), r: newRecorder()}
	a.sys.StartServer("g2", "b1", a.r)
	return a
}

// link links a hand-played peer id of g1 (incarnation inc) to b1, and
// returns once b1 sees it connected.
func (a *acceptor) link(t *testing.T, id string, inc uint64) (net.Conn, *protocol.Reader) {
	t.Helper()
	c, rd := rawLink(t, a.sys.Server("b1").Addr(), id, inc)
	testutil.WaitFor(t, id+" connected", a.r.connectedTo(id))
	return c, rd
}

func TestDuplicateLinkReplacesOld(t *testing.T) {
	a := startAcceptor(t)
	r2 := a.r
	c1, _ := a.link(t, "x9", 42)
	_, rd2 := rawLink(t, a.sys.Server("b1").Addr(), "x9", 42)
	if r := closeReason(t, c1); r != protocol.ReasonReplaced {
		t.Fatalf("old link closed with %s, want %s", r, protocol.ReasonReplaced)
	}
	testutil.WaitFor(t, "second connect", func() bool { return r2.count("connected", "x9") == 2 })
	if got := r2.eventsFor("x9"); !slices.Equal(got, []string{"joined", "connected", "disconnected", "connected"}) {
		t.Fatalf("events %v", got)
	}
	// The new link carries messages.
	if err := r2.peer("x9").Send(5, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := rd2.Next()
		if err != nil {
			t.Fatal(err)
		}
		if f.Kind == protocol.KindUser {
			if f.Tag != 5 || string(f.Payload) != "hi" {
				t.Fatalf("got tag %d %q", f.Tag, f.Payload)
			}
			break
		}
	}
}

func TestSilentLinkTimesOut(t *testing.T) {
	a := startAcceptor(t)
	c, _ := a.link(t, "mute", 1)
	// The raw peer never reads or answers pings; the acceptor must close
	// the link once it has been silent past the timeout.
	if r := closeReason(t, c); r != protocol.ReasonHeartbeatTimeout {
		t.Fatalf("reason %s, want %s", r, protocol.ReasonHeartbeatTimeout)
	}
	testutil.WaitFor(t, "left", func() bool { return a.r.count("left", "mute") == 1 })
}

// A peer that keeps its link alive (it pings) but stops reading must not
// hold the link's writer: once a write makes no progress for links.timeout
// the link closes with ReasonWriteStalled, before its queue overflows.
func TestStalledPeerIsClosed(t *testing.T) {
	a := startAcceptor(t)
	r2 := a.r
	c, _ := a.link(t, "deaf", 7)

	var down atomic.Bool
	pinged := make(chan struct{})
	go func() { // the raw peer pings and never reads
		defer close(pinged)
		ping := protocol.AppendFrame(nil, protocol.KindPing, 0, nil)
		for !down.Load() {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.Write(ping); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	defer func() { down.Store(true); <-pinged }()

	// b1 sends at a pace its queue absorbs for far longer than the
	// timeout, so only a stalled write can close the link.
	// A full queue would refuse sends (ErrBusy) and keep the link: only
	// the stalled write closes it.
	p := r2.peer("deaf")
	payload := make([]byte, 16<<10)
	deadline := time.Now().Add(testutil.Patience)
	for {
		if err := p.Send(1, payload); err != nil && !errors.Is(err, plugins.ErrBusy) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the link never closed")
		}
		time.Sleep(2 * time.Millisecond)
	}
	testutil.WaitFor(t, "link down", func() bool { return r2.count("disconnected", "deaf") == 1 })
	logs := a.sys.Logs()
	if !strings.Contains(logs, `"reason":"write stalled"`) {
		i := strings.LastIndex(logs, "link down")
		t.Fatalf("link not closed as stalled; last link down: %s", logs[max(0, i-300):min(len(logs), i+100)])
	}
}
