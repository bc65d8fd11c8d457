// Package registrytest is the conformance suite every registry.Connector
// implementation runs:
//
//	func TestConformance(t *testing.T) {
//		registrytest.Run(t, func(t *testing.T) func() registry.Connector {
//			hub := embedded.NewHub()
//			return func() registry.Connector { return hub.Connector() }
//		})
//	}
//
// The suite never sleeps and never asserts on time: it waits for the
// expected snapshot to arrive, failing only after a generous timeout, so it
// also suits registries where changes take a second or two to propagate.
// Every subtest uses group and member names unique to the run, so several
// runs may share one real registry. The suite does not check for leaked
// goroutines; callers do that in their TestMain (go.uber.org/goleak).
package registrytest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/registry"
)

// WaitTimeout bounds every wait of the suite for a snapshot or for a watch
// channel to close. It is a failure deadline, not an expected duration.
const WaitTimeout = 10 * time.Second

// maxSnapshots bounds every receive loop in count, beside WaitTimeout.
const maxSnapshots = 100_000

// Factory prepares one backend (one system of one registry) for a subtest
// and returns a constructor of connectors that all share that backend, so
// that a member registered through one connector is seen by a watch on
// another. Run calls the factory once per subtest with the subtest's t. The
// factory registers its own cleanup (t.Cleanup) and fails t if the backend
// cannot be set up; the constructor is called from the test goroutine
// only. The suite closes every connector it makes.
type Factory func(t *testing.T) func() registry.Connector

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, newBackend Factory) {
	s := &suite{newBackend: newBackend, run: fmt.Sprintf("rt%08x", rand.Uint32())}
	tests := []struct {
		name string
		fn   func(*env)
	}{
		{"RegisterThenWatch", testRegisterThenWatch},
		{"WatchThenRegister", testWatchThenRegister},
		{"FirstSnapshotEmpty", testFirstSnapshotEmpty},
		{"SortedByID", testSortedByID},
		{"GroupsSeparate", testGroupsSeparate},
		{"Deregister", testDeregister},
		{"CloseDeregisters", testCloseDeregisters},
		{"ReregisterNewIncarnation", testReregisterNewIncarnation},
		{"RestartNewIncarnation", testRestartNewIncarnation},
		{"AlreadyRegistered", testAlreadyRegistered},
		{"InvalidMember", testInvalidMember},
		{"NotRegistered", testNotRegistered},
		{"ClosedErrors", testClosedErrors},
		{"CloseTwice", testCloseTwice},
		{"WatchClosesOnCancel", testWatchClosesOnCancel},
		{"WatchClosesOnClose", testWatchClosesOnClose},
		{"SlowReaderGetsLatest", testSlowReader},
		{"SnapshotsOwnedByReceiver", testSnapshotOwnership},
		{"NoEqualSnapshotsInARow", testNoRepeats},
		{"Concurrent", testConcurrent},
		{"UpdateMeta", testUpdateMeta},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(s.env(t))
		})
	}
}

type suite struct {
	newBackend Factory
	run        string // random per Run call
	n          atomic.Int64
	port       atomic.Int64
}

func (s *suite) env(t *testing.T) *env {
	newConn := s.newBackend(t)
	return &env{
		t:       t,
		s:       s,
		newConn: newConn,
		prefix:  fmt.Sprintf("%s-%d", s.run, s.n.Add(1)),
	}
}

// env is the state of one subtest.
type env struct {
	t       *testing.T
	s       *suite
	newConn func() registry.Connector
	prefix  string // unique to this subtest and run
}

// conn returns a new connector, closed when the subtest ends.
func (e *env) conn() registry.Connector {
	e.t.Helper()
	c := e.newConn()
	if c == nil {
		e.t.Fatal("factory returned a nil connector")
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

// group returns a group name unique to this subtest.
func (e *env) group(name string) string { return e.prefix + "-" + name }

// member returns a valid member of group with every field set. Its ID is
// unique to this subtest and orders as name does within one group.
func (e *env) member(group, name string, incarnation uint64) registry.Member {
	port := 20000 + e.s.port.Add(1)%40000
	return registry.Member{
		ID:          group + "-" + name,
		Group:       group,
		Address:     fmt.Sprintf("127.0.0.1:%d", port),
		Incarnation: incarnation,
		Meta: map[string]string{
			"proto":   "1",
			"metrics": fmt.Sprintf("127.0.0.1:%d", port+1),
			"name":    name,
		},
	}
}

func (e *env) register(c registry.Connector, m registry.Member) {
	e.t.Helper()
	if err := c.Register(e.t.Context(), m); err != nil {
		e.t.Fatalf("Register(%s): %v", m.ID, err)
	}
}

// registerNew registers m through a new connector and returns it.
func (e *env) registerNew(m registry.Member) registry.Connector {
	e.t.Helper()
	c := e.conn()
	e.register(c, m)
	return c
}

// watch starts a watch of group on c that ends with the subtest.
func (e *env) watch(c registry.Connector, group string) *watcher {
	e.t.Helper()
	return e.watchCtx(e.t.Context(), c, group)
}

func (e *env) watchCtx(ctx context.Context, c registry.Connector, group string) *watcher {
	e.t.Helper()
	ch, err := c.Watch(ctx, group)
	if err != nil {
		e.t.Fatalf("Watch(%s): %v", group, err)
	}
	if ch == nil {
		e.t.Fatalf("Watch(%s) returned a nil channel", group)
	}
	return &watcher{t: e.t, group: group, ch: ch}
}

// watcher reads one watch channel and checks every snapshot it receives:
// sorted by ID without duplicates, only members of the watched group,
// never equal to the previous snapshot.
type watcher struct {
	t     *testing.T
	group string
	ch    <-chan []registry.Member
	last  []registry.Member // private copy of the last snapshot
	got   bool
	count int
}

// receive waits for the next snapshot until timer fires. ok is false on
// timeout; the test fails if the channel is closed.
func (w *watcher) receive(timer <-chan time.Time) (ms []registry.Member, ok bool) {
	w.t.Helper()
	select {
	case ms, open := <-w.ch:
		if !open {
			w.t.Fatalf("watch %s: channel closed; last snapshot %s", w.group, format(w.last))
		}
		w.accept(ms)
		return ms, true
	case <-timer:
		return nil, false
	}
}

func (w *watcher) accept(ms []registry.Member) {
	w.t.Helper()
	if p := problem(w.group, w.last, w.got, ms); p != "" {
		w.t.Errorf("watch %s: %s", w.group, p)
	}
	w.last, w.got = clone(ms), true
	w.count++
}

// next returns the next snapshot, failing the test after WaitTimeout.
func (w *watcher) next() []registry.Member {
	w.t.Helper()
	timer := time.NewTimer(WaitTimeout)
	defer timer.Stop()
	ms, ok := w.receive(timer.C)
	if !ok {
		w.t.Fatalf("watch %s: no snapshot within %v; last %s", w.group, WaitTimeout, format(w.last))
	}
	return ms
}

// until returns the first snapshot, starting with the last one already
// received, for which pred holds; it fails the test after WaitTimeout.
func (w *watcher) until(desc string, pred func([]registry.Member) bool) []registry.Member {
	w.t.Helper()
	if w.got && pred(w.last) {
		return clone(w.last)
	}
	timer := time.NewTimer(WaitTimeout)
	defer timer.Stop()
	for range maxSnapshots {
		ms, ok := w.receive(timer.C)
		if !ok {
			w.t.Fatalf("watch %s: no snapshot with %s within %v; last %s",
				w.group, desc, WaitTimeout, format(w.last))
		}
		if pred(ms) {
			return ms
		}
	}
	w.t.Fatalf("watch %s: no snapshot with %s in %d snapshots; last %s",
		w.group, desc, maxSnapshots, format(w.last))
	return nil
}

// exactly waits until the snapshot holds exactly want (in any order given).
func (w *watcher) exactly(want ...registry.Member) []registry.Member {
	w.t.Helper()
	want = clone(want)
	registry.SortMembers(want)
	return w.until("exactly "+format(want), func(ms []registry.Member) bool {
		return slices.EqualFunc(ms, want, registry.Member.Equal)
	})
}

// closed waits until the channel is closed, accepting (and checking) the
// snapshots still in flight.
func (w *watcher) closed() {
	w.t.Helper()
	if err := waitClosed(w.ch, func(ms []registry.Member) { w.accept(ms) }); err != nil {
		w.t.Fatalf("watch %s: %v", w.group, err)
	}
}

// waitClosed receives from ch until it is closed, calling each for every
// snapshot; it returns an error after WaitTimeout. Safe on any goroutine
// when each is.
func waitClosed(ch <-chan []registry.Member, each func([]registry.Member)) error {
	timer := time.NewTimer(WaitTimeout)
	defer timer.Stop()
	for range maxSnapshots {
		select {
		case ms, open := <-ch:
			if !open {
				return nil
			}
			if each != nil {
				each(ms)
			}
		case <-timer.C:
			return fmt.Errorf("channel not closed within %v", WaitTimeout)
		}
	}
	return fmt.Errorf("channel not closed after %d snapshots", maxSnapshots)
}

// problem describes what is wrong with snapshot ms of group received after
// prev (valid when hasPrev), or returns "".
func problem(group string, prev []registry.Member, hasPrev bool, ms []registry.Member) string {
	for i, m := range ms {
		if m.Group != group {
			return fmt.Sprintf("member %s of group %q in snapshot %s", m.ID, m.Group, format(ms))
		}
		if i > 0 && ms[i-1].ID >= m.ID {
			return fmt.Sprintf("snapshot not sorted by unique ID: %s", format(ms))
		}
	}
	if hasPrev && slices.EqualFunc(prev, ms, registry.Member.Equal) {
		return fmt.Sprintf("two equal snapshots in a row: %s", format(ms))
	}
	return ""
}

func has(id string) func([]registry.Member) bool {
	return func(ms []registry.Member) bool {
		return slices.ContainsFunc(ms, func(m registry.Member) bool { return m.ID == id })
	}
}

func clone(ms []registry.Member) []registry.Member {
	out := make([]registry.Member, len(ms))
	for i, m := range ms {
		m.Meta = maps.Clone(m.Meta)
		out[i] = m
	}
	return out
}

func format(ms []registry.Member) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("{%s %s %s inc=%d meta=%v}", m.ID, m.Group, m.Address, m.Incarnation, m.Meta)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}
