package cluster

import (
	"slices"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/registry"
)

func rosterIDs(ro *roster) []string {
	var ids []string
	for _, m := range ro.list() {
		ids = append(ids, m.ID)
	}
	return ids
}

func TestRosterDebouncesAbsences(t *testing.T) {
	const grace = 5 * time.Second
	t0 := time.Unix(1000, 0)
	a, b := registry.Member{ID: "a", Incarnation: 1}, registry.Member{ID: "b", Incarnation: 1}
	ro := newRoster(grace)
	step := func(at time.Duration, snap []registry.Member, wantChanged bool, want ...string) {
		t.Helper()
		c := ro.update(snap, t0.Add(at))
		if c.changed != wantChanged || !slices.Equal(rosterIDs(ro), want) {
			t.Fatalf("at %v: changed %v members %v, want %v %v", at, c.changed, rosterIDs(ro), wantChanged, want)
		}
	}
	step(0, []registry.Member{a, b}, true, "a", "b")
	step(time.Second, []registry.Member{a, b}, false, "a", "b")
	// Everything dropped, then back within the grace: nothing changes.
	step(2*time.Second, nil, false, "a", "b")
	if at, ok := ro.next(); !ok || !at.Equal(t0.Add(7*time.Second)) {
		t.Fatalf("next = %v %v, want the grace after the drop", at, ok)
	}
	step(6*time.Second, []registry.Member{a, b}, false, "a", "b")
	if _, ok := ro.next(); ok {
		t.Fatal("a departure is still pending after every member came back")
	}
	// b missing: it stays until the grace has passed since it went
	// missing, however many snapshots come meanwhile.
	step(10*time.Second, []registry.Member{a}, false, "a", "b")
	step(14*time.Second, []registry.Member{a}, false, "a", "b")
	if gone := ro.expire(t0.Add(15*time.Second - time.Nanosecond)); len(gone) != 0 {
		t.Fatalf("expired %v before the grace", gone)
	}
	if gone := ro.expire(t0.Add(15 * time.Second)); !slices.Equal(gone, []string{"b"}) {
		t.Fatalf("expired %v at the grace, want [b]", gone)
	}
	// Joins and new incarnations apply at once.
	b2 := registry.Member{ID: "b", Incarnation: 2}
	step(16*time.Second, []registry.Member{a, b2}, true, "a", "b")
	if ro.list()[1].Incarnation != 2 {
		t.Fatalf("b's incarnation = %d, want 2", ro.list()[1].Incarnation)
	}
	// A new incarnation while the old one is missing replaces it at once.
	step(17*time.Second, []registry.Member{a}, false, "a", "b")
	step(18*time.Second, []registry.Member{a, {ID: "b", Incarnation: 3}}, true, "a", "b")
}

func TestRosterZeroGrace(t *testing.T) {
	ro := newRoster(0)
	now := time.Unix(1000, 0)
	ro.update([]registry.Member{{ID: "a"}, {ID: "b"}}, now)
	if c := ro.update([]registry.Member{{ID: "a"}}, now); !c.changed || !slices.Equal(c.gone, []string{"b"}) {
		t.Fatalf("zero grace: %+v, want b gone at once", c)
	}
}
