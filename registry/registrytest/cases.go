package registrytest

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/cloudrift/cloudrift/registry"
)

// bigIncarnation uses the top bit, so a connector that stores the
// incarnation as a string or float must keep all 64 bits.
const bigIncarnation = 1<<63 | 0x0123456789abcdef

func testRegisterThenWatch(e *env) {
	g := e.group("g")
	m := e.member(g, "a", bigIncarnation)
	e.registerNew(m)
	e.watch(e.conn(), g).exactly(m) // Member.Equal: every field, Meta included
}

func testWatchThenRegister(e *env) {
	g := e.group("g")
	w := e.watch(e.conn(), g)
	m := e.member(g, "a", bigIncarnation)
	m.Meta = nil // nil and empty Meta are equivalent
	e.registerNew(m)
	w.exactly(m)
}

func testFirstSnapshotEmpty(e *env) {
	w := e.watch(e.conn(), e.group("empty"))
	if ms := w.next(); len(ms) != 0 {
		e.t.Fatalf("first snapshot of an unused group: %s, want empty", format(ms))
	}
}

func testSortedByID(e *env) {
	g := e.group("g")
	w := e.watch(e.conn(), g)
	var all []registry.Member
	for i, name := range []string{"e", "c", "a", "d", "b"} {
		m := e.member(g, name, uint64(i+1))
		all = append(all, m)
		e.registerNew(m)
	}
	w.exactly(all...) // every snapshot received is checked for order
}

func testGroupsSeparate(e *env) {
	g1, g2 := e.group("one"), e.group("two")
	a1, a2 := e.member(g1, "a1", 1), e.member(g1, "a2", 2)
	b1 := e.member(g2, "b1", 3)
	e.registerNew(a1)
	e.registerNew(b1)
	e.registerNew(a2)
	watcher := e.conn()
	w1, w2 := e.watch(watcher, g1), e.watch(watcher, g2)
	w1.exactly(a1, a2) // every snapshot received is checked for its group
	w2.exactly(b1)
}

func testDeregister(e *env) {
	testLeaves(e, "Deregister", func(c registry.Connector) error { return c.Deregister(e.t.Context()) })
}

func testCloseDeregisters(e *env) {
	testLeaves(e, "Close", registry.Connector.Close)
}

// testLeaves registers two members, each on its own connector, and checks
// that once one connector leaves (what names leave) a watch lists the
// other only.
func testLeaves(e *env, what string, leave func(registry.Connector) error) {
	g := e.group("g")
	a, b := e.member(g, "a", 1), e.member(g, "b", 2)
	ca := e.registerNew(a)
	e.registerNew(b)
	w := e.watch(e.conn(), g)
	w.exactly(a, b)
	if err := leave(ca); err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
	w.exactly(b)
}

// A connector may register again after Deregister, here as a new
// incarnation of the same ID.
func testReregisterNewIncarnation(e *env) {
	g := e.group("g")
	m1 := e.member(g, "a", 1)
	c := e.registerNew(m1)
	w := e.watch(e.conn(), g)
	w.exactly(m1)
	if err := c.Deregister(e.t.Context()); err != nil {
		e.t.Fatalf("Deregister: %v", err)
	}
	m2 := m1
	m2.Incarnation = bigIncarnation
	e.register(c, m2)
	w.exactly(m2)
}

// A replica restarts: its old connector is gone and a new one registers the
// same ID with a new incarnation and address.
func testRestartNewIncarnation(e *env) {
	g := e.group("g")
	old := e.member(g, "a", 1)
	c := e.registerNew(old)
	other := e.member(g, "b", 7)
	e.registerNew(other)
	w := e.watch(e.conn(), g)
	w.exactly(old, other)
	if err := c.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	restarted := e.member(g, "a", 2)
	e.registerNew(restarted)
	w.exactly(restarted, other)
}

func testAlreadyRegistered(e *env) {
	g := e.group("g")
	m := e.member(g, "a", 1)
	c := e.registerNew(m)
	wantErr(e.t, "second Register, same member", c.Register(e.t.Context(), m), registry.ErrAlreadyRegistered)
	m2 := e.member(g, "b", 2)
	wantErr(e.t, "second Register, other member", c.Register(e.t.Context(), m2), registry.ErrAlreadyRegistered)
	// The first registration stands; the refused one never shows up.
	other := e.member(g, "z", 3)
	e.registerNew(other)
	e.watch(e.conn(), g).exactly(m, other)
}

func testInvalidMember(e *env) {
	g := e.group("g")
	c := e.conn()
	valid := e.member(g, "a", 1)
	noID, noGroup, noAddr := valid, valid, valid
	noID.ID = ""
	noGroup.Group = ""
	noAddr.Address = ""
	for _, tc := range []struct {
		what string
		m    registry.Member
	}{{"empty ID", noID}, {"empty group", noGroup}, {"empty address", noAddr}} {
		wantErr(e.t, "Register with "+tc.what, c.Register(e.t.Context(), tc.m), registry.ErrInvalidMember)
	}
	// A refused Register does not count as a registration.
	e.register(c, valid)
	e.watch(e.conn(), g).exactly(valid)
}

func testNotRegistered(e *env) {
	c := e.conn()
	wantErr(e.t, "Deregister before Register", c.Deregister(e.t.Context()), registry.ErrNotRegistered)
	e.register(c, e.member(e.group("g"), "a", 1))
	if err := c.Deregister(e.t.Context()); err != nil {
		e.t.Fatalf("Deregister: %v", err)
	}
	wantErr(e.t, "second Deregister", c.Deregister(e.t.Context()), registry.ErrNotRegistered)
}

func testClosedErrors(e *env) {
	g := e.group("g")
	for _, registered := range []bool{false, true} {
		c := e.conn()
		if registered {
			e.register(c, e.member(g, "a", 1))
		}
		if err := c.Close(); err != nil {
			e.t.Fatalf("Close: %v", err)
		}
		ctx := e.t.Context()
		wantErr(e.t, "Register after Close", c.Register(ctx, e.member(g, "b", 2)), registry.ErrClosed)
		wantErr(e.t, "Deregister after Close", c.Deregister(ctx), registry.ErrClosed)
		ch, err := c.Watch(ctx, g)
		wantErr(e.t, "Watch after Close", err, registry.ErrClosed)
		if ch != nil {
			e.t.Errorf("Watch after Close returned a channel")
		}
	}
}

func testCloseTwice(e *env) {
	c := e.conn()
	e.register(c, e.member(e.group("g"), "a", 1))
	e.watch(c, e.group("g"))
	for i := range 2 {
		if err := c.Close(); err != nil {
			e.t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := c.Close(); err != nil {
				e.t.Errorf("concurrent Close: %v", err)
			}
		})
	}
	wg.Wait()
}

func testWatchClosesOnCancel(e *env) {
	g := e.group("g")
	c := e.conn()
	e.registerNew(e.member(g, "a", 1))

	// Cancel after reading the first snapshot.
	ctx1, cancel1 := context.WithCancel(e.t.Context())
	w1 := e.watchCtx(ctx1, c, g)
	w1.next()
	// Cancel without reading anything.
	ctx2, cancel2 := context.WithCancel(e.t.Context())
	w2 := e.watchCtx(ctx2, c, g)
	// A third watch on the same connector and group keeps working.
	w3 := e.watch(c, g)
	w3.next()

	cancel1()
	cancel2()
	w1.closed()
	w2.closed()

	b := e.member(g, "b", 2)
	e.registerNew(b)
	w3.until("member b", has(b.ID))
}

func testWatchClosesOnClose(e *env) {
	c := e.conn()
	e.register(c, e.member(e.group("one"), "a", 1))
	w1 := e.watch(c, e.group("one"))
	w2 := e.watch(c, e.group("two"))
	w1.next()
	if err := c.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	w1.closed()
	w2.closed()
}

// A reader that does not read while five members register gets, in the
// end, the snapshot that holds all five.
func testSlowReader(e *env) {
	g := e.group("g")
	w := e.watch(e.conn(), g)
	if ms := w.next(); len(ms) != 0 {
		e.t.Fatalf("first snapshot %s, want empty", format(ms))
	}
	var all []registry.Member
	for i := range 5 {
		m := e.member(g, fmt.Sprintf("m%d", i), uint64(i+1))
		all = append(all, m)
		e.registerNew(m)
	}
	w.exactly(all...)
}

// Changing a received snapshot does not change later snapshots.
func testSnapshotOwnership(e *env) {
	g := e.group("g")
	a := e.member(g, "a", 1)
	e.registerNew(a)
	w := e.watch(e.conn(), g)
	ms := w.exactly(a)
	ms[0].Address = "mutated:1"
	ms[0].Meta["proto"] = "mutated"
	ms[0].Meta["extra"] = "mutated"
	b := e.member(g, "b", 2)
	e.registerNew(b)
	w.exactly(a, b)
}

// Churn that returns to earlier sets (and changes in another group) must
// never produce two equal snapshots in a row, for a reader that keeps up
// and one that does not. The window ends at a sentinel member.
func testNoRepeats(e *env) {
	g, h := e.group("g"), e.group("h")
	stay := e.member(g, "stay", 1)
	e.registerNew(stay)
	fast := e.watch(e.conn(), g)
	fast.exactly(stay)
	slow := e.watch(e.conn(), g)
	slow.exactly(stay)

	flap := e.conn()
	elsewhere := e.conn()
	flapM := e.member(g, "flap", 2)
	elsewhereM := e.member(h, "x", 3)
	sentinel := e.member(g, "zsentinel", 4)
	sentinelConn := e.conn()
	ctx := e.t.Context()

	done := make(chan struct{})
	defer func() { <-done }()
	go func() {
		defer close(done)
		for range 10 {
			for _, step := range []func() error{
				func() error { return flap.Register(ctx, flapM) },
				func() error { return elsewhere.Register(ctx, elsewhereM) },
				func() error { return flap.Deregister(ctx) },
				func() error { return elsewhere.Deregister(ctx) },
			} {
				if err := step(); err != nil {
					e.t.Errorf("churn: %v", err)
					return
				}
			}
		}
		if err := sentinelConn.Register(ctx, sentinel); err != nil {
			e.t.Errorf("register sentinel: %v", err)
		}
	}()
	// fast reads while the churn runs; slow reads only afterwards.
	fast.exactly(stay, sentinel)
	<-done
	slow.exactly(stay, sentinel)
	e.t.Logf("snapshots received: reader keeping up %d, slow reader %d", fast.count, slow.count)
}

// Many connectors register, watch, deregister and close at once (run with
// -race); the final set is right and every snapshot on the way is sane.
func testConcurrent(e *env) {
	const workers, rounds = 8, 4
	g := e.group("g")
	ctx := e.t.Context()

	conns := make([]registry.Connector, workers)
	for i := range conns {
		conns[i] = e.conn()
	}

	// Observers read every snapshot while the workers run.
	obsCtx, stopObs := context.WithCancel(ctx)
	var obs sync.WaitGroup
	defer func() {
		stopObs()
		obs.Wait()
	}()
	obsConn := e.conn()
	for range 2 {
		ch, err := obsConn.Watch(obsCtx, g)
		if err != nil {
			e.t.Fatalf("Watch: %v", err)
		}
		obs.Add(1)
		go func() {
			defer obs.Done()
			var prev []registry.Member
			got := false
			check := func(ms []registry.Member) {
				if p := problem(g, prev, got, ms); p != "" {
					e.t.Errorf("observer: %s", p)
				}
				prev, got = ms, true
			}
			for range maxSnapshots {
				select {
				case ms, open := <-ch:
					if !open {
						return
					}
					check(ms)
				case <-obsCtx.Done():
					if err := waitClosed(ch, check); err != nil {
						e.t.Errorf("observer after cancel: %v", err)
					}
					return
				}
			}
			e.t.Errorf("observer: more than %d snapshots", maxSnapshots)
		}()
	}

	var final []registry.Member
	var wg sync.WaitGroup
	for i, c := range conns {
		m := e.member(g, fmt.Sprintf("w%d", i), uint64(i*100+rounds))
		if i%2 == 0 {
			final = append(final, m)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				mr := m
				mr.Incarnation = uint64(i*100 + r)
				if err := c.Register(ctx, mr); err != nil {
					e.t.Errorf("worker %d: Register: %v", i, err)
					return
				}
				wctx, cancel := context.WithCancel(ctx)
				ch, err := c.Watch(wctx, g)
				if err != nil {
					cancel()
					e.t.Errorf("worker %d: Watch: %v", i, err)
					return
				}
				cancel()
				if err := waitClosed(ch, nil); err != nil {
					e.t.Errorf("worker %d: watch after cancel: %v", i, err)
					return
				}
				if err := c.Deregister(ctx); err != nil {
					e.t.Errorf("worker %d: Deregister: %v", i, err)
					return
				}
			}
			if i%2 == 0 {
				if err := c.Register(ctx, m); err != nil {
					e.t.Errorf("worker %d: final Register: %v", i, err)
				}
			} else if err := c.Close(); err != nil {
				e.t.Errorf("worker %d: Close: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if e.t.Failed() {
		return
	}
	e.watch(e.conn(), g).exactly(final...)
}

// testUpdateMeta checks registry.Updater, for connectors that implement
// it: watchers see the new Meta, and Update refuses what it may not do.
func testUpdateMeta(e *env) {
	g := e.group("g")
	m := e.member(g, "a", 1)
	c := e.conn()
	u, ok := c.(registry.Updater)
	if !ok {
		e.t.Skip("the connector does not implement registry.Updater")
	}
	wantErr(e.t, "Update before Register", u.Update(e.t.Context(), m), registry.ErrNotRegistered)
	e.register(c, m)
	other := e.member(g, "b", 2)
	e.registerNew(other)
	w := e.watch(e.conn(), g)
	w.exactly(m, other)

	drained := m
	drained.Meta = maps.Clone(m.Meta)
	drained.Meta[registry.MetaDraining] = "1"
	if err := u.Update(e.t.Context(), drained); err != nil {
		e.t.Fatalf("Update: %v", err)
	}
	w.exactly(drained, other)

	moved := drained
	moved.Address = other.Address
	wantErr(e.t, "Update of the address", u.Update(e.t.Context(), moved), registry.ErrInvalidMember)
	reborn := drained
	reborn.Incarnation++
	wantErr(e.t, "Update of the incarnation", u.Update(e.t.Context(), reborn), registry.ErrInvalidMember)
	if err := c.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	wantErr(e.t, "Update after Close", u.Update(e.t.Context(), drained), registry.ErrClosed)
	w.exactly(other)
}
