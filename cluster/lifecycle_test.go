package cluster_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
)

// slowStart is a plugin whose Start takes a while, so that a Shutdown or
// Close lands while Start runs. Stop records that it ran after Start.
type slowStart struct {
	entered chan struct{}
	started atomic.Bool
	stopped atomic.Bool
	early   atomic.Bool // Stop ran before Start had finished
}

func newSlowStart() *slowStart { return &slowStart{entered: make(chan struct{})} }

func (p *slowStart) Start(context.Context, plugins.Host) error {
	close(p.entered)
	time.Sleep(30 * time.Millisecond)
	p.started.Store(true)
	return nil
}

func (p *slowStart) Stop(context.Context) error {
	if !p.started.Load() {
		p.early.Store(true)
	}
	p.stopped.Store(true)
	return nil
}

// Shutdown and Close are safe while Start runs: they wait for it, then
// stop what it started (and Stop runs only after Start). Run with -race.
func TestShutdownOrCloseDuringStart(t *testing.T) {
	for _, stop := range []string{"Shutdown", "Close"} {
		t.Run(stop, func(t *testing.T) {
			sys := newSystem(t, twoGroups())
			p := newSlowStart()
			s := sys.NewUnstarted(cluster.Options{Group: "g1", ID: "a1", Plugins: []plugins.Plugin{p}})
			startErr := make(chan error, 1)
			go func() { startErr <- s.Start(context.Background()) }()
			<-p.entered
			var err error
			if stop == "Shutdown" {
				ctx, cancel := context.WithTimeout(context.Background(), testutil.Patience)
				err = s.Shutdown(ctx)
				cancel()
			} else {
				err = s.Close()
			}
			if err != nil {
				t.Fatalf("%s during Start = %v", stop, err)
			}
			// Close cancels what Start waits on, so Start may fail then;
			// Shutdown lets it finish.
			if err := <-startErr; err != nil && stop == "Shutdown" {
				t.Fatalf("Start = %v", err)
			}
			select {
			case <-s.Done():
			case <-time.After(testutil.Patience):
				t.Fatal("Done not closed")
			}
			if !p.stopped.Load() || p.early.Load() {
				t.Fatalf("plugin stopped %v, before its Start ended %v", p.stopped.Load(), p.early.Load())
			}
		})
	}
}

// Start racing Shutdown or Close, with no plugin to widen the window: no
// panic, no race, and the server always ends.
func TestStartRacesShutdownAndClose(t *testing.T) {
	sys := newSystem(t, twoGroups())
	for i := 0; i < 20; i++ {
		s := sys.NewUnstarted(cluster.Options{Group: "g2", ID: "b1"})
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { defer wg.Done(); s.Start(context.Background()) }()
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), testutil.Patience)
			defer cancel()
			s.Shutdown(ctx)
		}()
		go func() { defer wg.Done(); s.Close() }()
		wg.Wait()
		select {
		case <-s.Done():
		case <-time.After(testutil.Patience):
			t.Fatalf("round %d: Done not closed", i)
		}
	}
}

// blockingStop is a plugin whose Stop ignores its context and blocks
// until released.
type blockingStop struct {
	inStop  chan struct{}
	release chan struct{}
}

func (p *blockingStop) Stop(context.Context) error {
	close(p.inStop)
	<-p.release
	return nil
}

// Shutdown returns its context's error at the deadline even when a
// plugin's Stop blocks; Close then closes the links at once and returns
// once the rest (the Stop) has ended.
func TestShutdownReturnsAtDeadlineAndCloseFinishes(t *testing.T) {
	sys := newSystem(t, twoGroups())
	r2 := newRecorder()
	sys.StartServer("g2", "b1", r2)
	p := &blockingStop{inStop: make(chan struct{}), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(p.release) }) }
	t.Cleanup(release)
	a1 := sys.StartServer("g1", "a1", p).Cluster()
	testutil.WaitFor(t, "link", r2.connectedTo("a1"))

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- a1.Shutdown(ctx) }()
	select {
	case err := <-shutdownErr:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want %v", err, context.DeadlineExceeded)
		}
	case <-time.After(testutil.Patience):
		t.Fatal("Shutdown kept waiting past its deadline for a blocked Stop")
	}
	<-p.inStop

	closeErr := make(chan error, 1)
	go func() { closeErr <- a1.Close() }()
	testutil.WaitFor(t, "link closed", func() bool { return r2.count("disconnected", "a1") >= 1 })
	// Only Close marks the server closed while the Stop blocks.
	testutil.WaitFor(t, "Close begun", func() bool { return cluster.Closing(a1) })
	select {
	case err := <-closeErr:
		t.Fatalf("Close returned (%v) while a plugin's Stop still runs", err)
	case <-a1.Done():
		t.Fatal("Done closed while a plugin's Stop still runs")
	default:
	}
	release()
	select {
	case err := <-closeErr:
		if err != nil {
			t.Fatalf("Close = %v", err)
		}
	case <-time.After(testutil.Patience):
		t.Fatal("Close did not return after Stop ended")
	}
	select {
	case <-a1.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
}

// Once the server has stopped, it starts no goroutine: the caller is told
// and cleans up.
func TestNoGoroutineStartsAfterShutdown(t *testing.T) {
	s := newSystem(t, twoGroups()).StartServer("g2", "b1").Cluster()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Patience)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var ran atomic.Bool
	if cluster.GoTracked(s, func() { ran.Store(true) }) {
		t.Fatal("goTracked accepted a goroutine after Shutdown")
	}
	time.Sleep(10 * time.Millisecond)
	if ran.Load() {
		t.Fatal("a refused goroutine ran")
	}
}
