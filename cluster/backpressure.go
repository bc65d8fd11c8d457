package cluster

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/internal/logsample"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
)

// Backpressure on links. A link's queue is what its producers appended and
// its writer has not yet written: pending plus the unwritten rest of the
// batch being written. Three marks, all from links.queueBytes (Q):
//
//   - at or over the high-water mark (Q/2) the link is busy. Sends still
//     queue and return nil, but an external server stops reading the game
//     clients whose messages go to a busy link: a client's read loop that
//     dispatched a message during which a send found a link busy waits,
//     before it reads the next message, until every busy link has drained
//     under the low-water mark (Q/4) or closed. TCP flow control then
//     holds the client back. Send itself never blocks: hooks often hold
//     their own locks.
//   - a send that would take the queue past Q is refused with
//     plugins.ErrBusy, wrapped with the queue's length; the frame is not
//     queued and the link stays up. Between Q/2 and Q a client's read loop
//     pauses after at most one message's sends, so a client's own flood
//     meets ErrBusy only when thousands of clients dispatch at the same
//     moment or a hook sends far more than it reads; sends from other
//     goroutines (a link's read loop, a plugin's own goroutine) are never
//     paused and get ErrBusy once the queue is full.
//   - a full queue alone never closes a link. A busy peer takes bytes; a
//     stuck peer takes none for links.timeout, and only that closes the
//     link (ReasonWriteStalled, see link.write).
//
// The runtime cannot tell which goroutine sent, so the pause is decided
// by time: a client whose dispatch overlapped another's send to a busy
// link pauses too, until that link drains. Control frames (pings, pongs,
// ClientGone, Leaving) are small and never refused.

// flowControl holds a server's backpressure counters and their log.
type flowControl struct {
	busySends atomic.Uint64      // sends that left a link's queue at or over its high-water mark
	refused   atomic.Uint64      // sends refused with ErrBusy
	pauses    atomic.Uint64      // client read loops paused for busy links
	logs      *logsample.Sampler // busy links and refusals, sampled per peer and kind
}

// clientPausePoll is how often a paused client's read loop checks whether
// its session is closing meanwhile.
const clientPausePoll = 100 * time.Millisecond

func (f *flowControl) init(log *zerolog.Logger) {
	f.logs = &logsample.Sampler{Report: func(key string, n int) {
		log.Warn().Str("event", key).Int("suppressed", n).Dur("window", logsample.DefaultWindow).
			Msg("more busy-link events than were logged")
	}}
}

// highWater and lowWater are the link queue's marks, in bytes.
func (s *Server) highWater() int { return s.links.QueueBytes / 2 }
func (s *Server) lowWater() int  { return s.links.QueueBytes / 4 }

// isControlKind reports the frames a full queue still takes.
func isControlKind(k protocol.Kind) bool {
	switch k {
	case protocol.KindPing, protocol.KindPong, protocol.KindClientGone, protocol.KindLeaving, protocol.KindClose:
		return true
	}
	return false
}

// markBusyLocked records that the queue holds queued bytes after a send;
// it reports whether the link is busy and whether it just became so.
func (l *link) markBusyLocked(queued int) (busy, became bool) {
	if l.drained != nil {
		return true, false
	}
	if queued < l.s.highWater() {
		return false, false
	}
	l.drained = make(chan struct{})
	return true, true
}

// wrote records that the writer wrote n bytes of its batch, and ends the
// busy spell once the queue is under the low-water mark.
func (l *link) wrote(n int) {
	l.mu.Lock()
	l.unwritten -= n
	if l.drained != nil && len(l.pending)+l.unwritten < l.s.lowWater() {
		close(l.drained)
		l.drained = nil
	}
	l.mu.Unlock()
}

// busyUntil returns a channel closed when the busy link drains, or nil
// when it is not busy.
func (l *link) busyUntil() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.drained
}

// refuseBusy counts and logs (sampled) a send refused for a full queue
// of queued bytes, and returns the error for the sender.
func (l *link) refuseBusy(queued int) error {
	f := &l.s.flow
	f.refused.Add(1)
	if f.logs.Allow("send refused: " + l.r.id) {
		l.log.Warn().Int("queued", queued).Int("limit", l.s.links.QueueBytes).
			Msg("link busy: a send was refused, its outbound queue is full")
	}
	return fmt.Errorf("%w: link to %s holds %d bytes, limit %d", plugins.ErrBusy, l.r.id, queued, l.s.links.QueueBytes)
}

// becameBusy logs (sampled) a link whose queue reached its high-water mark.
func (f *flowControl) becameBusy(l *link, queued int) {
	if f.logs.Allow("busy: " + l.r.id) {
		l.log.Info().Int("queued", queued).Int("high_water", l.s.highWater()).Int("low_water", l.s.lowWater()).
			Msg("link busy: pausing reads from the clients that send to it until it drains")
	}
}

// dispatchMark returns the server's count of sends to busy links, taken
// before a client's message is dispatched; pauseIfBusy compares it after.
func (c *session) dispatchMark() uint64 { return c.h.s.flow.busySends.Load() }

// pauseIfBusy pauses the client's read loop when a send found a link
// busy since mark: it waits until every busy link has drained or closed,
// or the session or the server ends. It reports false when the session
// should end.
func (c *session) pauseIfBusy(mark uint64) bool {
	s := c.h.s
	if s.flow.busySends.Load() == mark {
		return true
	}
	var tick *time.Timer
	paused := false
	for _, l := range s.liveLinks() {
		ch := l.busyUntil()
		if ch == nil {
			continue
		}
		if !paused {
			paused = true
			s.flow.pauses.Add(1)
			c.pauses.Add(1)
			tick = time.NewTimer(clientPausePoll)
			defer tick.Stop()
		}
		for waiting := true; waiting; {
			select {
			case <-ch:
				waiting = false
			case <-l.quit:
				waiting = false
			case <-s.ctx.Done(): // shutdown closes the session
				return !c.isClosing()
			case <-tick.C:
				if c.isClosing() {
					return false
				}
				tick.Reset(clientPausePoll)
			}
		}
	}
	return !c.isClosing()
}

func (c *session) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}
