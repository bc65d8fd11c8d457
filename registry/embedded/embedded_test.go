package embedded

import (
	"context"
	"errors"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/registry"
	"github.com/cloudrift/cloudrift/registry/registrytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) func() registry.Connector {
		hub := NewHub()
		return func() registry.Connector { return hub.Connector() }
	})
}

// The zero Hub works like NewHub's.
func TestConformanceZeroHub(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) func() registry.Connector {
		var hub Hub
		return func() registry.Connector { return hub.Connector() }
	})
}

func member(id, group string, inc uint64) registry.Member {
	return registry.Member{ID: id, Group: group, Address: "127.0.0.1:7000", Incarnation: inc,
		Meta: map[string]string{"k": id}}
}

func open(t *testing.T, h *Hub) *Connector {
	t.Helper()
	c := h.Connector()
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func register(t *testing.T, c *Connector, m registry.Member) {
	t.Helper()
	if err := c.Register(t.Context(), m); err != nil {
		t.Fatalf("Register(%s): %v", m.ID, err)
	}
}

// oneWatched returns a hub with member a of group g registered, and a
// watch of g that has seen it.
func oneWatched(t *testing.T) (*Hub, <-chan []registry.Member) {
	t.Helper()
	h := NewHub()
	a := member("a", "g", 1)
	register(t, open(t, h), a)
	w := watchG(t, open(t, h), "g")
	expect(t, w, a)
	return h, w
}

func watchG(t *testing.T, c *Connector, group string) <-chan []registry.Member {
	t.Helper()
	ch, err := c.Watch(t.Context(), group)
	if err != nil {
		t.Fatalf("Watch(%s): %v", group, err)
	}
	return ch
}

// now receives without waiting: the hub delivers synchronously, so every
// snapshot a call causes is in the channel when the call returns.
func now(t *testing.T, ch <-chan []registry.Member) (ms []registry.Member, ok bool) {
	t.Helper()
	select {
	case ms, open := <-ch:
		if !open {
			t.Fatal("watch channel closed")
		}
		return ms, true
	default:
		return nil, false
	}
}

// expect receives the snapshot that must be pending and compares it.
func expect(t *testing.T, ch <-chan []registry.Member, want ...registry.Member) {
	t.Helper()
	ms, ok := now(t, ch)
	if !ok {
		t.Fatalf("no snapshot pending, want %v", want)
	}
	if !slices.EqualFunc(ms, want, registry.Member.Equal) {
		t.Fatalf("snapshot %v, want %v", ms, want)
	}
}

func expectNothing(t *testing.T, ch <-chan []registry.Member) {
	t.Helper()
	if ms, ok := now(t, ch); ok {
		t.Fatalf("unexpected snapshot %v", ms)
	}
}

func expectMembers(t *testing.T, h *Hub, group string, want ...registry.Member) {
	t.Helper()
	if got := h.Members(group); !slices.EqualFunc(got, want, registry.Member.Equal) {
		t.Fatalf("Members(%s) = %v, want %v", group, got, want)
	}
}

func TestExpire(t *testing.T) {
	h := NewHub()
	a, b := member("a", "g", 1), member("b", "g", 2)
	ca := open(t, h)
	register(t, ca, a)
	register(t, open(t, h), b)
	w := watchG(t, open(t, h), "g")
	expect(t, w, a, b)

	h.Expire("a")
	expect(t, w, b)
	expectMembers(t, h, "g", b)

	h.Expire("a") // already gone
	h.Expire("unknown")
	expectNothing(t, w)

	// The connector stays open and forgot its registration.
	if err := ca.Deregister(t.Context()); !errors.Is(err, registry.ErrNotRegistered) {
		t.Fatalf("Deregister after Expire: %v, want ErrNotRegistered", err)
	}
	a2 := member("a", "g", 3)
	register(t, ca, a2)
	expect(t, w, a2, b)
}

func TestPauseResume(t *testing.T) {
	h := NewHub()
	a, b, c := member("a", "g", 1), member("b", "g", 2), member("c", "g", 3)
	ca, cb, cc := open(t, h), open(t, h), open(t, h)
	register(t, ca, a)
	register(t, cb, b)
	watcher := open(t, h)
	w := watchG(t, watcher, "g")
	expect(t, w, a, b)

	h.Pause()
	h.Pause() // idempotent

	if err := cc.Register(t.Context(), c); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Register while paused: %v, want ErrUnavailable", err)
	}
	if err := ca.Deregister(t.Context()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Deregister while paused: %v, want ErrUnavailable", err)
	}
	expectMembers(t, h, "g", a, b)

	// Changes that still happen during the outage reach no watcher, and
	// a new watch gets no first snapshot: the last known set stands.
	h.Expire("a")
	if err := cb.Close(); err != nil {
		t.Fatalf("Close while paused: %v", err)
	}
	expectMembers(t, h, "g")
	expectNothing(t, w)
	late := watchG(t, watcher, "g")
	expectNothing(t, late)

	h.Resume()
	expect(t, w)
	expect(t, late)

	// Running again: Register works and is seen.
	register(t, cc, c)
	expect(t, w, c)
	expect(t, late, c)

	h.Resume() // not paused: nothing happens
	expectNothing(t, w)
}

// An outage during which nothing changes ends without a snapshot.
func TestPauseResumeNoChange(t *testing.T) {
	h, w := oneWatched(t)
	h.Pause()
	h.Resume()
	expectNothing(t, w)
}

// A second connector registering a held ID replaces the entry, as a
// restarted replica does before its old entry lapsed.
func TestReplace(t *testing.T) {
	h := NewHub()
	old, other := open(t, h), open(t, h)
	wc := open(t, h)
	wg, wh := watchG(t, wc, "g"), watchG(t, wc, "h")
	expect(t, wg)
	expect(t, wh)

	x1 := member("x", "g", 1)
	register(t, old, x1)
	expect(t, wg, x1)

	x2 := member("x", "g", 2)
	x2.Address = "127.0.0.1:7001"
	restarted := open(t, h)
	register(t, restarted, x2)
	expect(t, wg, x2) // one step: never a set without x, never two x
	expectNothing(t, wg)
	expectMembers(t, h, "g", x2)

	// The old connector lost its registration; closing it leaves x2.
	if err := old.Deregister(t.Context()); !errors.Is(err, registry.ErrNotRegistered) {
		t.Fatalf("Deregister of the replaced connector: %v, want ErrNotRegistered", err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, wg)
	expectMembers(t, h, "g", x2)

	// Replacement across groups moves the member.
	x3 := member("x", "h", 3)
	register(t, other, x3)
	expect(t, wg)
	expect(t, wh, x3)
	if err := restarted.Deregister(t.Context()); !errors.Is(err, registry.ErrNotRegistered) {
		t.Fatalf("Deregister of the replaced connector: %v, want ErrNotRegistered", err)
	}
	if err := other.Deregister(t.Context()); err != nil {
		t.Fatal(err)
	}
	expect(t, wh)
}

// The first snapshot is in the channel when Watch returns, and Close
// returns only after every watch channel of the connector is closed.
func TestSynchronousDelivery(t *testing.T) {
	h := NewHub()
	c := h.Connector()
	a := member("a", "g", 1)
	register(t, c, a)
	w1 := watchG(t, c, "g")
	w2 := watchG(t, c, "other")
	expect(t, w1, a)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for i, ch := range []<-chan []registry.Member{w1, w2} {
		if !closedNow(ch) {
			t.Errorf("watch %d not closed when Close returned", i)
		}
	}
	expectMembers(t, h, "g")
}

// closedNow drains ch without waiting and reports whether it is closed.
func closedNow(ch <-chan []registry.Member) bool {
	for range 2 { // at most one snapshot is pending
		select {
		case _, open := <-ch:
			if !open {
				return true
			}
		default:
			return false
		}
	}
	return false
}

func TestWatchErrors(t *testing.T) {
	c := open(t, NewHub())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Watch(ctx, "g"); !errors.Is(err, context.Canceled) {
		t.Errorf("Watch with a done ctx: %v, want context.Canceled", err)
	}
	if _, err := c.Watch(t.Context(), ""); err == nil {
		t.Error("Watch of an empty group name: no error")
	}
	if err := c.Register(ctx, member("a", "g", 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Register with a done ctx: %v, want context.Canceled", err)
	}
}

// Members hands out copies.
func TestMembersCopy(t *testing.T) {
	h := NewHub()
	a := member("a", "g", 1)
	register(t, open(t, h), a)
	ms := h.Members("g")
	ms[0].Meta["k"] = "mutated"
	expectMembers(t, h, "g", a)
}
