package demotest

import (
	"context"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/cli"
	"github.com/cloudrift/cloudrift/internal/testutil"
)

// Dev runs an example binary's dev command (cli.Run with the binary's
// opts) on the system file at path, with 2 bots and a report every 100ms,
// until its stdout satisfies until; then it interrupts dev and waits for it
// to exit. It fails t, with dev's output, if that does not happen within
// testutil.Patience (what names the awaited output) or if dev exits non-zero.
func Dev(t testing.TB, path, what string, until func(stdout string) bool, opts ...cli.Option) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errs testutil.Buffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, []string{"dev", "-config", path, "-bots", "2", "-interval", "100ms"}, &out, &errs, opts...)
	}()
	deadline := time.Now().Add(testutil.Patience)
	for !until(out.String()) {
		select {
		case code := <-done:
			t.Fatalf("dev exited %d before %s\nstdout:\n%s\nstderr:\n%s", code, what, out.String(), errs.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("timed out waiting for %s\nstdout:\n%s\nstderr:\n%s", what, out.String(), errs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("dev exited %d\nstderr:\n%s", code, errs.String())
	}
}

// Validate runs an example binary's validate command on the system file at
// path, and fails t unless it exits 0.
func Validate(t testing.TB, path string, opts ...cli.Option) {
	t.Helper()
	var out, errs testutil.Buffer
	if code := cli.Run(context.Background(), []string{"validate", "-config", path}, &out, &errs, opts...); code != 0 {
		t.Fatalf("validate exited %d: %s", code, errs.String())
	}
}
