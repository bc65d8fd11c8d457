package cloudmemory

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// expiringOp records when it expired.
type expiringOp struct {
	name string
	got  *[]string
}

func (o *expiringOp) expireLocked() { *o.got = append(*o.got, o.name) }

// startExpiries returns a started set of timeout d, its lock, and the
// names its operations record as they expire.
func startExpiries(d time.Duration) (*expiries, *sync.Mutex, *[]string) {
	mu := new(sync.Mutex)
	e := new(expiries)
	e.start(mu, d)
	return e, mu, new([]string)
}

func TestExpiriesFireInOrderAndSkipEnded(t *testing.T) {
	e, mu, got := startExpiries(50 * time.Millisecond)
	mu.Lock()
	now := time.Now()
	ids := make([]uint64, 200) // past the first ring: it grows
	for i := range ids {
		ids[i] = e.addLocked(&expiringOp{name: string(rune('a' + i%26)), got: got}, now)
	}
	for i := range ids {
		if i%2 == 1 {
			e.doneLocked(ids[i])
		}
	}
	e.doneLocked(ids[len(ids)-1] + 5) // an unknown ID is ignored
	mu.Unlock()

	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(*got)
		mu.Unlock()
		if n == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 100 expired", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if el := time.Since(now); el < 50*time.Millisecond {
		t.Fatalf("expired after %s, before the timeout", el)
	}
	var want []string
	for i := 0; i < 200; i += 2 {
		want = append(want, string(rune('a'+i%26)))
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(*got, want) {
		t.Fatalf("expired %v, want %v", *got, want)
	}
	if e.head != e.tail {
		t.Fatalf("%d entries left", e.tail-e.head)
	}
}

func TestExpiriesKeepOnlyRunningOnes(t *testing.T) {
	e, mu, got := startExpiries(time.Hour)
	mu.Lock()
	defer mu.Unlock()
	for range 10_000 { // operations that end in the order they began
		id := e.addLocked(&expiringOp{got: got}, time.Now())
		e.doneLocked(id)
	}
	if e.head != e.tail || len(e.ring) != 64 {
		t.Fatalf("%d entries kept, ring of %d", e.tail-e.head, len(e.ring))
	}
	// One that runs long holds the front; those after it are kept until it ends.
	long := e.addLocked(&expiringOp{got: got}, time.Now())
	for range 100 {
		e.doneLocked(e.addLocked(&expiringOp{got: got}, time.Now()))
	}
	if n := e.tail - e.head; n != 101 {
		t.Fatalf("%d entries kept behind a running one, want 101", n)
	}
	e.doneLocked(long)
	if e.head != e.tail {
		t.Fatalf("%d entries left after the long one ended", e.tail-e.head)
	}
}

// A later operation may time out in the hook of an earlier one (a Get's
// answer ends another's wait): each fires once.
func TestExpiriesOperationEndsAnotherWhileFiring(t *testing.T) {
	e, mu, got := startExpiries(20 * time.Millisecond)
	mu.Lock()
	now := time.Now()
	second := &expiringOp{name: "second", got: got}
	var secondID uint64
	first := &endingOp{e: e, other: &secondID, got: got}
	e.addLocked(first, now)
	secondID = e.addLocked(second, now)
	e.addLocked(&expiringOp{name: "third", got: got}, now)
	mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"first", "third"}; !slices.Equal(*got, want) {
		t.Fatalf("expired %v, want %v", *got, want)
	}
}

type endingOp struct {
	e     *expiries
	other *uint64
	got   *[]string
}

func (o *endingOp) expireLocked() {
	*o.got = append(*o.got, "first")
	o.e.doneLocked(*o.other)
}
