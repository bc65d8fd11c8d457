package cluster

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
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
//     queue and return nil, but the goroutine that sent pauses before it
//     reads more, when it is a read loop: a game client's read loop waits,
//     before it reads the client's next message, until the busy link has
//     drained under the low-water mark (Q/4) or closed, so TCP flow
//     control holds that client back while every other client is read as
//     before; a link's read loop waits the same way, but at most half of
//     links.timeout per frame, so that its own peer never sees a stuck
//     reader. Send itself never blocks: hooks often hold their own locks.
//   - a send that would take the queue past Q is refused with
//     plugins.ErrBusy, wrapped with the queue's length; the frame is not
//     queued and the link stays up. Read loops pause after at most one
//     message's sends, so they meet ErrBusy only when very many of them
//     send at the same moment or a hook sends far more than it reads;
//     other goroutines (timers, a plugin's own goroutines) are never
//     paused and get ErrBusy once the queue is full.
//   - a full queue alone never closes a link. A busy peer takes bytes; a
//     stuck peer takes none for links.timeout, and only that closes the
//     link (ReasonWriteStalled, see link.write).
//
// Which goroutine sent: Go does not name goroutines, so a send to a busy
// link (the slow path only) reads its goroutine's ID from the first line of
// runtime.Stack and records it with the link; a read loop, which learned
// its own ID when it started, looks itself up after each dispatch, and
// only when some send found a link busy meanwhile (one atomic load
// otherwise). Control frames (pings, pongs, ClientGone, Leaving, Close)
// are small, never refused and never pause anyone.

// flowControl holds a server's backpressure state and counters.
type flowControl struct {
	busySends atomic.Uint64 // sends that left a link's queue at or over its high-water mark
	refused   atomic.Uint64 // sends refused with ErrBusy
	pauses    atomic.Uint64 // client read loops paused for busy links
	linkWaits atomic.Uint64 // link read loops paused for busy links
	logs      *logsample.Sampler

	mu      sync.Mutex
	senders map[uint64]*link // goroutine ID → the busy link it sent to, until it pauses
}

// maxBusySenders bounds flowControl.senders: goroutines that are not read
// loops never collect their entries, so the map is cleared when it grows
// this large (a read loop then misses one pause, and pauses at its next
// send to the busy link).
const maxBusySenders = 4096

// clientPausePoll is how often a paused client's read loop checks whether
// its session is closing meanwhile.
const clientPausePoll = 100 * time.Millisecond

func (f *flowControl) init(log *zerolog.Logger) {
	f.senders = make(map[uint64]*link)
	f.logs = &logsample.Sampler{Report: func(key string, n int) {
		log.Warn().Str("event", key).Int("suppressed", n).Dur("window", logsample.DefaultWindow).
			Msg("more busy-link events than were logged")
	}}
}

// goid returns the calling goroutine's ID, from the first line of its
// stack trace ("goroutine 17 [running]:"). It costs a stack walk: callers
// use it once per read loop, and on the busy path.
func goid() uint64 {
	var buf [64]byte
	b := bytes.TrimPrefix(buf[:runtime.Stack(buf[:], false)], []byte("goroutine "))
	var id uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}

// sentToBusy records that the calling goroutine left l busy.
func (f *flowControl) sentToBusy(l *link) {
	id := goid()
	f.mu.Lock()
	if len(f.senders) >= maxBusySenders {
		clear(f.senders)
	}
	f.senders[id] = l
	f.mu.Unlock()
	f.busySends.Add(1)
}

// mark returns the count of busy sends, taken before a read loop
// dispatches what it read; busyLink compares it after.
func (f *flowControl) mark() uint64 { return f.busySends.Load() }

// busyLink returns the busy link the goroutine id sent to since mark, and
// forgets it; nil when it sent to none.
func (f *flowControl) busyLink(mark, id uint64) *link {
	if f.busySends.Load() == mark {
		return nil
	}
	f.mu.Lock()
	l := f.senders[id]
	delete(f.senders, id)
	f.mu.Unlock()
	return l
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

// pauseIfBusy pauses the client's read loop when its last dispatch (since
// mark) left a link busy: it waits until that link has drained or closed,
// or the session or the server ends. It reports false when the session is
// closing.
func (c *session) pauseIfBusy(mark uint64) bool {
	s := c.h.s
	l := s.flow.busyLink(mark, c.goid)
	if l == nil {
		return true
	}
	ch := l.busyUntil()
	if ch == nil {
		return true
	}
	s.flow.pauses.Add(1)
	c.pauses.Add(1)
	tick := time.NewTimer(clientPausePoll)
	defer tick.Stop()
	for {
		select {
		case <-ch:
			return !c.isClosing()
		case <-l.quit:
			return !c.isClosing()
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

// pauseIfBusy pauses the link's read loop when its last dispatch (since
// mark) left a link busy (this one or another): until that link drains or
// closes, for at most half of links.timeout, so the peer's writer never
// sees this reader stalled. A link that drains slower than that meets
// ErrBusy once full instead.
func (l *link) pauseIfBusy(mark, id uint64) {
	s := l.s
	busy := s.flow.busyLink(mark, id)
	if busy == nil {
		return
	}
	ch := busy.busyUntil()
	if ch == nil {
		return
	}
	s.flow.linkWaits.Add(1)
	t := time.NewTimer(s.links.Timeout.Duration() / 2)
	defer t.Stop()
	select {
	case <-ch:
	case <-busy.quit:
	case <-l.quit:
	case <-t.C:
	}
}

func (c *session) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}
