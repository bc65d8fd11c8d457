package embedded

import (
	"time"

	"github.com/cloudrift/cloudrift/registry"
)

// Fault injection, a test aid: Blackout, Flap and Hide change what the
// hub's watchers see for a while, never what is registered. They model a
// registry that answers wrongly (a restarting agent that reports an empty
// catalog, a health check turned critical by a lost registry node) while
// every server keeps running and stays registered. Members always reports
// the true registrations.
//
// Each call publishes the changed view at once (when it returns, every
// affected watch channel holds it, as after a Register) and restores the
// true view d later from a timer, then closes the returned channel. Calls
// may overlap: a group, or a member, stays masked until the last fault
// covering it ends. While the hub is paused, masking and restoring follow
// the pause rules: watchers see the view current at Resume. Delivery stays
// latest-wins, so a watcher that does not read during a short fault may
// never see it. A d of zero or less masks nothing and returns a closed
// channel.

// faults counts the faults in force. The zero value masks nothing.
// Guarded by Hub.mu.
type faults struct {
	blackout int            // Blackout calls in force
	flapped  map[string]int // group → Flap calls in force
	hidden   map[string]int // member ID → Hide calls in force
}

// Blackout makes every watch of every group receive an empty snapshot for
// d, then the true members again, as when a registry agent restarts and
// briefly answers with an empty catalog. Register, Deregister and Expire
// keep working meanwhile; watchers see their effect when d has passed.
// The returned channel is closed once the true view is published again.
func (h *Hub) Blackout(d time.Duration) <-chan struct{} {
	return h.inject(d, func(f *faults, n int) { f.blackout += n }, nil)
}

// Flap makes the watches of group receive a snapshot without any member
// for d, then the true members again, as a catalog that drops a group for
// a moment. The returned channel is closed once the true view is published
// again.
func (h *Hub) Flap(group string, d time.Duration) <-chan struct{} {
	return h.inject(d, func(f *faults, n int) {
		f.flapped = bump(f.flapped, group, n)
	}, []string{group})
}

// Hide makes watchers stop seeing the member with this ID for d, while it
// stays registered and its connector notices nothing, as when the registry
// node it registered through is lost and its health check turns critical
// although the server runs. The returned channel is closed once the member
// is shown again (if still registered). Hiding an unknown ID masks the ID
// should a member register under it within d.
func (h *Hub) Hide(id string, d time.Duration) <-chan struct{} {
	return h.inject(d, func(f *faults, n int) {
		f.hidden = bump(f.hidden, id, n)
	}, nil)
}

// inject applies change(+1) now and change(-1) after d, notifying the
// watchers of groups (or of every watched group when groups is nil) each
// time.
func (h *Hub) inject(d time.Duration, change func(*faults, int), groups []string) <-chan struct{} {
	done := make(chan struct{})
	if d <= 0 {
		close(done)
		return done
	}
	apply := func(n int) {
		h.mu.Lock()
		defer h.mu.Unlock()
		change(&h.faults, n)
		if groups != nil {
			for _, g := range groups {
				h.notifyLocked(g)
			}
			return
		}
		for g := range h.watches {
			h.notifyLocked(g)
		}
	}
	apply(1)
	time.AfterFunc(d, func() {
		apply(-1)
		close(done)
	})
	return done
}

// bump adds n to m[k], deleting the key at zero, and returns m (made when
// nil).
func bump(m map[string]int, k string, n int) map[string]int {
	if m == nil {
		m = make(map[string]int)
	}
	if m[k] += n; m[k] <= 0 {
		delete(m, k)
	}
	return m
}

// viewLocked returns what the watchers of group see: the members of group
// sorted by ID, less those the faults in force mask. Meta maps are shared
// with the hub. h.mu must be held.
func (h *Hub) viewLocked(group string) []registry.Member {
	f := &h.faults
	if f.blackout > 0 || f.flapped[group] > 0 {
		return []registry.Member{}
	}
	ms := h.snapshotLocked(group)
	if len(f.hidden) == 0 {
		return ms
	}
	out := ms[:0]
	for _, m := range ms {
		if f.hidden[m.ID] == 0 {
			out = append(out, m)
		}
	}
	return out
}
