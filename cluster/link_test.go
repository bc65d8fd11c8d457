package cluster

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/protocol"
)

// A peer that keeps its link alive (it pings) but stops reading must not
// hold the link's writer: once a write makes no progress for links.timeout
// the link closes with ReasonWriteStalled, before its queue overflows.
func TestStalledPeerIsClosed(t *testing.T) {
	h := newHarness(t, twoGroups())
	r2 := newRecorder()
	b1 := h.start("g2", "b1", r2)
	c, _ := rawLink(t, b1.Addr(), "deaf", 7)
	testutil.WaitFor(t, "linked", r2.connectedTo("deaf"))

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
	p := r2.peer("deaf")
	payload := make([]byte, 16<<10)
	deadline := time.Now().Add(testutil.Patience)
	for p.Send(1, payload) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the link never closed")
		}
		time.Sleep(2 * time.Millisecond)
	}
	testutil.WaitFor(t, "link down", func() bool { return r2.count("disconnected", "deaf") == 1 })
	logs := h.logs.String()
	if !strings.Contains(logs, `"reason":"write stalled"`) {
		i := strings.LastIndex(logs, "link down")
		t.Fatalf("link not closed as stalled; last link down: %s", logs[max(0, i-300):min(len(logs), i+100)])
	}
}
