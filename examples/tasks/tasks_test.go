package tasks

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/examples/internal/demotest"
	"github.com/cloudrift/cloudrift/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// system runs the example's cluster.yaml in-process: cloud-1 to cloud-3,
// coordinator-1, client-1 and client-2, over loopback, with coord as the
// coordinator server's plugin.
type system struct {
	*demotest.System
	job string
}

// newSystem sets coord's job to the guard's, as the file gives it, and
// starts the system.
func newSystem(t *testing.T, coord *Coordinator) *system {
	t.Helper()
	var guard Guard
	s := &system{System: demotest.Load(t, "cluster.yaml")}
	s.Settings("client", GuardPlugin, &guard)
	coord.Job, s.job = guard.Job, guard.Job
	s.StartGroup("cloud")
	s.StartServer("coordinator", "coordinator-1", coord)
	s.StartGroup("client")
	s.WaitLinked("coordinator")
	s.WaitLinked("client")
	return s
}

// naivePrimes counts the primes below n with a plain sieve, independently
// of CountPrimes.
func naivePrimes(lo, hi uint64) uint64 {
	composite := make([]bool, hi)
	var n uint64
	for i := uint64(2); i < hi; i++ {
		if composite[i] {
			continue
		}
		if i >= lo {
			n++
		}
		for j := i * i; j < hi; j += i {
			composite[j] = true
		}
	}
	return n
}

// run starts w.Run on its own goroutine; the returned channel gets its
// error.
func run(ctx context.Context, w *Worker) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- w.Run(ctx) }()
	return ch
}

func TestTasksWithAWorkerCrashing(t *testing.T) {
	coord := &Coordinator{From: 0, To: 200_000, Chunk: 10_000}
	s := newSystem(t, coord)
	ctx, cancel := context.WithCancel(testutil.Context(t))
	defer cancel()
	want := naivePrimes(0, 200_000)

	observer := s.Server("client-2").Dial()
	progress, err := Watch(ctx, observer, s.job)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the first progress", func() bool {
		p, ok := ProgressOf(progress)
		return ok && p.Tasks == 20 && p.Done == 0 && p.Round == 1
	})

	// The first worker takes a task and hangs on it.
	hung := make(chan Task, 1)
	w1 := &Worker{Client: s.Server("client-1").Dial(), Job: s.job, Name: "hangs",
		OnTask: func(t Task) {
			select {
			case hung <- t:
			default:
			}
		},
		Compute: func(ctx context.Context, _ Task) (uint64, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		}}
	w1err := run(ctx, w1)
	var held Task
	select {
	case held = <-hung:
	case <-ctx.Done():
		t.Fatal("the first worker got no task")
	}

	// Two more workers, one on each client server; then the first crashes.
	w2 := &Worker{Client: s.Server("client-2").Dial(), Job: s.job, Name: "two"}
	w3 := &Worker{Client: s.Server("client-1").Dial(), Job: s.job, Name: "three"}
	w2err, w3err := run(ctx, w2), run(ctx, w3)
	w1.Client.Close()
	if err := <-w1err; !errors.Is(err, client.ErrClosed) {
		t.Fatalf("the crashed worker's Run returned %v", err)
	}

	testutil.WaitFor(t, "the round to finish", func() bool { return coord.Status().Finished })
	st := coord.Status()
	if st.Result != want || st.Done != 20 || st.Tasks != 20 || st.Reassigned != 1 || st.Workers != 2 {
		t.Fatalf("status %v, want %d primes, 20 tasks done, 1 reassigned, 2 workers", st.Progress, want)
	}
	by := st.CompletedBy[held.ID]
	if by != w2.Client.Ref() && by != w3.Client.Ref() {
		t.Fatalf("%s, held by the crashed worker, was completed by %s", held, by)
	}
	for id, ref := range st.CompletedBy {
		if ref == w1.Client.Ref() {
			t.Fatalf("task %d completed by the crashed worker", id)
		}
	}
	// The coordinator may count a result before the worker's Post has
	// returned to it, so the workers' own counts can trail by a moment.
	testutil.WaitFor(t, "the workers count their results", func() bool { return w2.Done()+w3.Done() >= 20 })
	if w2.Done()+w3.Done() != 20 {
		t.Fatalf("workers completed %d + %d tasks, want 20", w2.Done(), w3.Done())
	}
	testutil.WaitFor(t, "the observer sees the round finished", func() bool {
		p, ok := ProgressOf(progress)
		return ok && p.Finished && p.Result == want && p.Reassigned == 1
	})

	// The guard keeps workers to their keys.
	c := w2.Client
	if err := c.Post(ctx, TaskKey(s.job, w3.Client.Ref()), Task{Round: 1, Hi: 1}.encode()); !errors.Is(err, cloud.ErrRejected) {
		t.Fatalf("posting a task to another worker: %v", err)
	}
	if err := c.Post(ctx, ProgressKey(s.job), Progress{}.encode()); !errors.Is(err, cloud.ErrRejected) {
		t.Fatalf("posting the progress: %v", err)
	}
	if _, err := c.Get(ctx, cloud.Query{Keys: []Key{TaskKey(s.job, w3.Client.Ref())}}); !errors.Is(err, cloud.ErrRejected) {
		t.Fatalf("reading another worker's task: %v", err)
	}
	if err := c.Post(ctx, ResultKey(s.job), []byte("junk")); !errors.Is(err, cloud.ErrRejected) {
		t.Fatalf("a malformed result: %v", err)
	}

	cancel()
	for _, ch := range []<-chan error{w2err, w3err} {
		if err := <-ch; !errors.Is(err, context.Canceled) {
			t.Fatalf("worker ended with %v", err)
		}
	}
}

func TestCountPrimes(t *testing.T) {
	ctx := context.Background()
	for _, r := range []struct{ lo, hi uint64 }{{0, 0}, {0, 2}, {0, 3}, {2, 3}, {0, 100}, {90, 100}, {97, 98}, {1000, 300_000}, {65_536, 65_537 + 1<<16}} {
		got, err := CountPrimes(ctx, r.lo, r.hi)
		if want := naivePrimes(r.lo, r.hi); err != nil || got != want {
			t.Errorf("CountPrimes(%d, %d) = %d, %v; want %d", r.lo, r.hi, got, err, want)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := CountPrimes(cctx, 0, 1<<20); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

func TestRows(t *testing.T) {
	task := Task{Round: 2, ID: 7, Lo: 10, Hi: 20}
	if got, err := decodeTask(task.encode()); err != nil || got != task {
		t.Fatalf("task %v, %v", got, err)
	}
	p := Progress{Round: 1, Tasks: 2, Done: 3, Reassigned: 4, Workers: 5, Result: 6, Finished: true}
	if got, err := decodeProgress(p.encode()); err != nil || got != p {
		t.Fatalf("progress %v, %v", got, err)
	}
	r := result{Round: 1, ID: 2, Count: 3}
	if got, err := decodeResult(r.encode()); err != nil || got != r {
		t.Fatalf("result %v, %v", got, err)
	}
	for _, b := range [][]byte{nil, make([]byte, 23), (&Task{Lo: 2, Hi: 1}).encode()} {
		if _, err := decodeTask(b); !errors.Is(err, ErrBadRow) {
			t.Errorf("decodeTask(%x): %v", b, err)
		}
	}
}
