package demotest

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
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

// CountAbove reports whether re matches somewhere in out with its first
// capturing group a decimal number above zero: for a line such as
// "42 tasks done" in a command's output. re must have a capturing group.
func CountAbove(re *regexp.Regexp, out string) bool {
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		if n, err := strconv.ParseUint(m[1], 10, 64); err == nil && n > 0 {
			return true
		}
	}
	return false
}
