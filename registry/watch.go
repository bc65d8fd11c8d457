package registry

import (
	"maps"
	"slices"
	"sync"
)

// Publisher delivers the snapshots of one watch with the semantics that
// Connector.Watch promises: latest-wins, no two equal snapshots in a row,
// every snapshot sorted by ID and owned by the receiver. It needs no
// goroutine: Publish never blocks, and a snapshot the reader has not taken
// yet is replaced by the newer one.
//
// Connector implementations create one Publisher per Watch call, return C
// to the caller, Publish every member set they learn (equal sets are
// filtered here), and Close it when the watch ends. All methods are safe
// for concurrent use. The zero value is not usable; call NewPublisher.
type Publisher struct {
	ch chan []Member

	mu sync.Mutex
	// Guarded by mu. delivered is the last snapshot the reader has taken
	// (valid when hasDelivered); pending is the snapshot waiting in ch
	// (valid when hasPending). Both are the publisher's own copies, never
	// the slices handed to the reader.
	delivered    []Member
	hasDelivered bool
	pending      []Member
	hasPending   bool
	closed       bool
}

// NewPublisher returns a publisher with nothing published yet.
func NewPublisher() *Publisher {
	return &Publisher{ch: make(chan []Member, 1)}
}

// C returns the channel the reader receives snapshots from. It is closed
// by Close, after which the reader may still receive the one snapshot that
// was pending.
func (p *Publisher) C() <-chan []Member { return p.ch }

// Publish makes snapshot the newest set the reader will receive. The first
// call always publishes, even an empty set; later calls publish only when
// the set differs from the newest one the reader has or will receive. A
// snapshot the reader has not taken yet is dropped in favour of this one,
// unless this one equals the last snapshot the reader took, in which case
// nothing is left pending. Publish copies snapshot (Meta maps included) and
// sorts the copy by ID; the caller keeps ownership of snapshot. Publish
// after Close does nothing.
func (p *Publisher) Publish(snapshot []Member) {
	own := cloneMembers(snapshot)
	SortMembers(own)

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if p.hasPending {
		if equalMembers(p.pending, own) {
			return
		}
		select {
		case <-p.ch:
			// The reader never saw the pending snapshot.
		default:
			// The reader took it.
			p.delivered, p.hasDelivered = p.pending, true
		}
		p.pending, p.hasPending = nil, false
	}
	if p.hasDelivered && equalMembers(p.delivered, own) {
		return
	}
	// Only Publish sends, under mu, and ch was just emptied or was
	// empty: the send cannot block.
	p.ch <- cloneMembers(own)
	p.pending, p.hasPending = own, true
}

// Close closes the channel. It is safe to call more than once.
func (p *Publisher) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	close(p.ch)
}

// cloneMembers returns a deep copy of ms (Meta maps included). A nil or
// empty input gives an empty, non-nil slice.
func cloneMembers(ms []Member) []Member {
	out := make([]Member, len(ms))
	for i, m := range ms {
		m.Meta = maps.Clone(m.Meta)
		out[i] = m
	}
	return out
}

func equalMembers(a, b []Member) bool {
	return slices.EqualFunc(a, b, Member.Equal)
}
