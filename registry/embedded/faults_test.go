package embedded

import (
	"testing"
	"time"
)

func TestBlackout(t *testing.T) {
	h := NewHub()
	a, b, x := member("a", "g", 1), member("b", "g", 2), member("x", "h", 3)
	register(t, open(t, h), a)
	cb := open(t, h)
	register(t, cb, b)
	register(t, open(t, h), x)
	wg, wh := watchG(t, open(t, h), "g"), watchG(t, open(t, h), "h")
	expect(t, wg, a, b)
	expect(t, wh, x)

	done := h.Blackout(time.Hour)
	expect(t, wg)
	expect(t, wh)
	// Registrations go on and show nowhere; Members tells the truth.
	_ = cb.Close()
	expectNothing(t, wg)
	expectMembers(t, h, "g", a)
	// A new watch starts blank too.
	expect(t, watchG(t, open(t, h), "g"))
	select {
	case <-done:
		t.Fatal("blackout ended early")
	default:
	}

	done = h.Blackout(time.Millisecond)
	<-done
	// The first blackout still holds.
	expectNothing(t, wg)
}

func TestFlapRestores(t *testing.T) {
	h := NewHub()
	a, x := member("a", "g", 1), member("x", "h", 3)
	register(t, open(t, h), a)
	register(t, open(t, h), x)
	wg, wh := watchG(t, open(t, h), "g"), watchG(t, open(t, h), "h")
	expect(t, wg, a)
	expect(t, wh, x)

	done := h.Flap("g", 20*time.Millisecond)
	expect(t, wg)
	expectNothing(t, wh) // other groups are untouched
	<-done
	expect(t, wg, a)
	expectNothing(t, wh)
}

func TestHide(t *testing.T) {
	h := NewHub()
	a, b := member("a", "g", 1), member("b", "g", 2)
	ca := open(t, h)
	register(t, ca, a)
	register(t, open(t, h), b)
	w := watchG(t, open(t, h), "g")
	expect(t, w, a, b)

	done := h.Hide("a", 20*time.Millisecond)
	expect(t, w, b)
	expectMembers(t, h, "g", a, b)
	// The hidden member's connector notices nothing.
	if err := ca.Deregister(t.Context()); err != nil {
		t.Fatalf("Deregister of a hidden member: %v", err)
	}
	register(t, ca, a)
	expectNothing(t, w)
	<-done
	expect(t, w, a, b)
}

func TestFaultWithoutDuration(t *testing.T) {
	h, w := oneWatched(t)
	for _, done := range []<-chan struct{}{h.Blackout(0), h.Flap("g", -1), h.Hide("a", 0)} {
		<-done
	}
	expectNothing(t, w)
}

func TestFaultDuringPause(t *testing.T) {
	h, w := oneWatched(t)
	h.Pause()
	<-h.Flap("g", time.Millisecond)
	expectNothing(t, w)
	h.Resume()
	expectNothing(t, w) // the view at Resume equals the last one sent

	h.Pause()
	h.Flap("g", time.Hour)
	h.Resume()
	expect(t, w)
}
