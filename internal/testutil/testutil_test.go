package testutil

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"strings"
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

func TestCommandMatchAndStop(t *testing.T) {
	c := Start(t, func(ctx context.Context, stdout, stderr io.Writer) int {
		fmt.Fprintln(stderr, "starting")
		fmt.Fprintln(stdout, "ready on port 42")
		<-ctx.Done()
		return 7
	})
	if m := c.Match(t, &c.Stdout, regexp.MustCompile(`port (\d+)`)); m[1] != "42" {
		t.Fatalf("submatches %q", m)
	}
	if code := c.Stop(t); code != 7 {
		t.Fatalf("Stop = %d, want 7", code)
	}
	if code := c.Stop(t); code != 7 {
		t.Fatalf("Stop again = %d, want 7", code)
	}
}

// fatalTB records a Fatalf and ends the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestCommandEndingEarlyFailsTheWait(t *testing.T) {
	c := Start(t, func(_ context.Context, stdout, _ io.Writer) int {
		fmt.Fprintln(stdout, "bad flag")
		return 2
	})
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Match(f, &c.Stdout, regexp.MustCompile(`listening`))
	}()
	<-done
	if !strings.Contains(f.msg, "returned 2 before") || !strings.Contains(f.msg, "bad flag") {
		t.Fatalf("failure %q: want the exit code and the output", f.msg)
	}
}
