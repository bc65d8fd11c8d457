// Package testutil holds the helpers every package's tests share: a
// bounded wait for a condition, a context bounded the same way, and a
// buffer safe to read while other goroutines write to it.
//
// WaitFor and Context take a testing.TB and fail the test themselves
// (t.Fatal), so they must be called from the test's goroutine.
package testutil

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"
)

// Patience bounds every wait of this package, and the life of a Context:
// past it, the test fails as timed out. It bounds hangs; no test asserts
// how fast anything is.
const Patience = 30 * time.Second

// WaitFor polls cond every 5ms until it holds, and fails t, naming what,
// if it does not within Patience. cond runs on the caller's goroutine.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Context returns a context that ends after Patience or when the test
// ends, whichever comes first.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Patience)
	t.Cleanup(cancel)
	return ctx
}

// Buffer is an io.Writer that keeps everything written to it, safe for
// concurrent use: a log sink for several servers, or a command's output
// read while the command runs. Its zero value is an empty buffer.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p; it never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns a copy of everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
