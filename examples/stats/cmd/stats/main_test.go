package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/cli"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestDev runs the README's command for a few seconds: the system of
// cluster.yaml with simulated players, until the running total grows.
func TestDev(t *testing.T) {
	t.Setenv("STATS_DB", filepath.Join(t.TempDir(), "stats.db"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errs syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, []string{"dev", "-config", "../../cluster.yaml", "-bots", "2", "-interval", "100ms"}, &out, &errs, options()...)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !!grown(out.String()) {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("no growing total in 20s\nstdout:\n%s\nstderr:\n%s", out.String(), errs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("dev exited %d\nstderr:\n%s", code, errs.String())
	}
}

func TestValidate(t *testing.T) {
	var out, errs syncBuffer
	if code := cli.Run(context.Background(), []string{"validate", "-config", "../../cluster.yaml"}, &out, &errs, options()...); code != 0 {
		t.Fatalf("validate exited %d: %s", code, errs.String())
	}
}

var totalRE = regexp.MustCompile(`stats: running total (\d+)`)

// grown reports whether dev printed a running total above 0.
func grown(out string) bool {
	for _, m := range totalRE.FindAllStringSubmatch(out, -1) {
		if n, _ := strconv.Atoi(m[1]); n > 0 {
			return true
		}
	}
	return false
}
