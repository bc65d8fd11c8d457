package demotest

import (
	"context"
	"io"
	"testing"

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
	dev := testutil.Start(t, func(ctx context.Context, stdout, stderr io.Writer) int {
		return cli.Run(ctx, []string{"dev", "-config", path, "-bots", "2", "-interval", "100ms"}, stdout, stderr, opts...)
	})
	dev.Until(t, what, func() bool { return until(dev.Stdout.String()) })
	if code := dev.Stop(t); code != 0 {
		t.Fatalf("dev exited %d\nstderr:\n%s", code, &dev.Stderr)
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
