package cloudmemory

import (
	"sync"
	"time"
)

// expiries ends operations whose timeout passed: the Gets (GetTimeout),
// or the operations waiting for a confirmation (OpTimeout). Every
// operation of a set has the same timeout, so they expire in the order
// they began: a ring in that order and one timer serve them all, and an
// operation costs no timer of its own. An operation that ends first takes
// itself out (done); the ring then holds only the operations from the
// oldest one still running on, a few under load.
//
// All methods but start run with mu, the Caller's lock, held. Stopping
// the Caller ends its operations; the timer then finds none.
type expiries struct {
	mu    *sync.Mutex
	after time.Duration
	ring  []expiring // a power of two long; ID id at ring[id&(len-1)]
	head  uint64     // the oldest ID kept
	tail  uint64     // the next ID
	timer *time.Timer
	armed bool // the timer runs
}

// expiring is an operation and when it times out; op is nil once it ended.
type expiring struct {
	at time.Time
	op expirer
}

// expirer is an operation that can time out.
type expirer interface {
	// expireLocked ends the operation with a timeout; mu is held.
	expireLocked()
}

// start makes the set ready: operations time out after d, under mu.
func (e *expiries) start(mu *sync.Mutex, d time.Duration) {
	e.mu, e.after = mu, d
	e.ring = make([]expiring, 64)
	e.timer = time.AfterFunc(time.Hour, e.fire)
	e.timer.Stop()
}

// addLocked registers op, which began at now, and returns its ID for
// doneLocked.
func (e *expiries) addLocked(op expirer, now time.Time) uint64 {
	if e.tail-e.head == uint64(len(e.ring)) {
		e.grow()
	}
	id := e.tail
	e.ring[id&uint64(len(e.ring)-1)] = expiring{at: now.Add(e.after), op: op}
	e.tail++
	if !e.armed {
		e.armed = true
		e.timer.Reset(e.after)
	}
	return id
}

// grow doubles the ring, keeping IDs and order.
func (e *expiries) grow() {
	ring := make([]expiring, max(2*len(e.ring), 64))
	for id := e.head; id != e.tail; id++ {
		ring[id&uint64(len(ring)-1)] = e.ring[id&uint64(len(e.ring)-1)]
	}
	e.ring = ring
}

// doneLocked takes out the operation id, which ended before its timeout.
func (e *expiries) doneLocked(id uint64) {
	if id < e.head || id >= e.tail {
		return
	}
	e.ring[id&uint64(len(e.ring)-1)].op = nil
	e.trim()
}

// trim drops the ended operations at the front.
func (e *expiries) trim() {
	mask := uint64(len(e.ring) - 1)
	for e.head != e.tail && e.ring[e.head&mask].op == nil {
		e.ring[e.head&mask] = expiring{}
		e.head++
	}
}

// fire is the timer's: it ends the operations whose time came and sets
// the timer for the next one.
func (e *expiries) fire() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.armed = false
	now := time.Now()
	mask := uint64(len(e.ring) - 1)
	for e.head != e.tail {
		x := e.ring[e.head&mask]
		if x.at.After(now) {
			e.armed = true
			e.timer.Reset(x.at.Sub(now))
			return
		}
		e.ring[e.head&mask] = expiring{}
		e.head++
		x.op.expireLocked() // may take out later ones: trim below
		e.trim()
		mask = uint64(len(e.ring) - 1)
	}
}
