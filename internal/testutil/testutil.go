// Package testutil holds the helpers every package's tests share: a
// bounded wait for a condition, a context bounded the same way, a buffer
// safe to read while other goroutines write to it, and a command run in
// the background whose output a test waits on.
//
// The helpers that take a testing.TB fail the test themselves (t.Fatal),
// so they must be called from the test's goroutine.
package testutil

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
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

// Command is a command (a CLI's Run, say) running on its own goroutine,
// whose output the test reads while it runs.
type Command struct {
	Stdout, Stderr Buffer

	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned
	code   int           // run's exit code, once done is closed
}

// Start runs run on its own goroutine with a context that Stop cancels and
// the command's Stdout and Stderr. Stop runs when the test ends, so a
// command never outlives its test unnoticed.
func Start(t testing.TB, run func(ctx context.Context, stdout, stderr io.Writer) int) *Command {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Command{cancel: cancel, done: make(chan struct{})}
	go func() {
		c.code = run(ctx, &c.Stdout, &c.Stderr)
		close(c.done)
	}()
	t.Cleanup(func() { c.Stop(t) })
	return c
}

// Done is closed when the command has returned.
func (c *Command) Done() <-chan struct{} { return c.done }

// Wait waits for the command to return by itself and returns its exit
// code. It fails t (returning -1) if the command does not return within
// Patience.
func (c *Command) Wait(t testing.TB) int {
	t.Helper()
	select {
	case <-c.done:
		return c.code
	case <-time.After(Patience):
		t.Errorf("the command did not return within %v%s", Patience, c.output())
		return -1
	}
}

// Stop cancels the command's context and returns its exit code, as Wait.
// Calling it again returns the same code.
func (c *Command) Stop(t testing.TB) int {
	t.Helper()
	c.cancel()
	return c.Wait(t)
}

// Until polls cond every 20ms until it holds. It fails t, naming what and
// with the command's output, if the command returns first or cond does
// not hold within Patience.
func (c *Command) Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Patience)
	for !cond() {
		select {
		case <-c.done:
			if cond() {
				return
			}
			t.Fatalf("the command returned %d before %s%s", c.code, what, c.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s%s", what, c.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Match waits, as Until, for re to match what the command has written to
// out (its Stdout or Stderr), and returns the submatches.
func (c *Command) Match(t testing.TB, out *Buffer, re *regexp.Regexp) []string {
	t.Helper()
	var m []string
	c.Until(t, fmt.Sprintf("%q in its output", re), func() bool {
		m = re.FindStringSubmatch(out.String())
		return m != nil
	})
	return m
}

func (c *Command) output() string {
	return fmt.Sprintf("\nstdout:\n%s\nstderr:\n%s", c.Stdout.String(), c.Stderr.String())
}
