package testutil

import (
	"fmt"
	"sync"
	"testing"
)

func TestBufferConcurrentWrites(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmt.Fprintf(&b, "%d\n", i)
		}()
	}
	wg.Wait()
	if n := len(b.String()); n != 16 {
		t.Fatalf("%d bytes written, want 16: %q", n, b.String())
	}
}

func TestWaitForReturnsOnceTrue(t *testing.T) {
	calls := 0
	WaitFor(t, "the third call", func() bool { calls++; return calls == 3 })
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3", calls)
	}
	if Context(t).Err() != nil {
		t.Fatal("a fresh Context has ended")
	}
}
