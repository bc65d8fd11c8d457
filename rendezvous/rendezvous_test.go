package rendezvous

import (
	"fmt"
	"testing"
)

type srv string

func (s srv) ID() string { return string(s) }

func TestOwnerIsOrderFreeAndMatchesPick(t *testing.T) {
	a := NewRing([]string{"world-1", "world-2", "world-3"})
	b := NewRing([]string{"world-3", "world-1", "world-2", "world-1"})
	if !a.Equal(b) || a.Len() != 3 {
		t.Fatalf("rings differ: %v vs %v", a.IDs(), b.IDs())
	}
	cands := []srv{"world-2", "world-3", "world-1"}
	for i := range 1000 {
		k := Hash(fmt.Sprint("key-", i))
		if a.Owner(k) != b.Owner(k) {
			t.Fatalf("key %d: owners differ", i)
		}
		if got := Pick(cands, k); string(got) != a.Owner(k) {
			t.Fatalf("key %d: Pick %q, Owner %q", i, got, a.Owner(k))
		}
	}
}

func TestSpreadAndMinimalMoves(t *testing.T) {
	ids := []string{"world-1", "world-2", "world-3", "world-4"}
	full := NewRing(ids)
	less := NewRing(ids[:3])
	const n = 20000
	counts := map[string]int{}
	for i := range n {
		k := Hash64(uint64(i))
		before, after := full.Owner(k), less.Owner(k)
		counts[before]++
		// Removing world-4 moves only world-4's keys.
		if before != "world-4" && before != after {
			t.Fatalf("key %d moved from %s to %s", i, before, after)
		}
	}
	for _, id := range ids {
		// A fair share is n/4 = 5000; allow generous slack.
		if c := counts[id]; c < 4000 || c > 6000 {
			t.Errorf("%s owns %d of %d keys: %v", id, c, n, counts)
		}
	}
}

func TestEmpty(t *testing.T) {
	var r Ring
	if r.Owner(Hash("x")) != "" || r.Has("x") || r.Len() != 0 {
		t.Error("zero ring owns something")
	}
	if got := Pick([]srv(nil), 1); got != "" {
		t.Errorf("Pick of none = %q", got)
	}
}
