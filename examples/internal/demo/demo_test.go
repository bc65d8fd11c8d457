package demo

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/cli"
	"github.com/cloudrift/cloudrift/clustertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestFlagsParse(t *testing.T) {
	for _, c := range []struct {
		args     []string
		code     int
		ok       bool
		url, msg string
	}{
		{args: []string{"-url", "ws://x/"}, ok: true, url: "ws://x/"},
		{args: []string{"-help"}, code: 0},
		{args: []string{"-nope"}, code: 2, msg: "flag provided but not defined"},
		{args: nil, code: 2, msg: "prog cmd: -url is required and takes no arguments"},
		{args: []string{"-url", "ws://x/", "extra"}, code: 2, url: "ws://x/", msg: "prog cmd: -url is required"},
	} {
		var stderr bytes.Buffer
		f := NewFlags(cli.Invocation{Prog: "prog", Stderr: &stderr}, "cmd")
		code, ok := f.Parse(c.args)
		if code != c.code || ok != c.ok || f.URL != c.url || !strings.Contains(stderr.String(), c.msg) {
			t.Errorf("%q: code %d, ok %v, url %q, stderr %q", c.args, code, ok, f.URL, stderr.String())
		}
	}
}

func TestFlagsFail(t *testing.T) {
	var stderr bytes.Buffer
	f := NewFlags(cli.Invocation{Prog: "prog", Stderr: &stderr}, "cmd")
	if code := f.Fail(errors.New("boom")); code != 1 || stderr.String() != "prog cmd: boom\n" {
		t.Fatalf("Fail: %d, %q", code, stderr.String())
	}
}

func TestBotsCrashInTurn(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	crashed := make(map[int]int)
	started := make(chan int, 3)
	asked := make(chan struct{})
	b := StartBots(ctx, 3, func(ctx context.Context, i int, crash <-chan struct{}) {
		started <- i
		<-asked // take no request until all are made
		for {
			select {
			case <-ctx.Done():
				return
			case <-crash:
				mu.Lock()
				crashed[i]++
				mu.Unlock()
			}
		}
	})
	for range 3 {
		<-started
	}
	// Five requests: bots 0, 1, 2, then 0 and 1 are skipped (still pending).
	for range 5 {
		b.CrashNext()
	}
	close(asked)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := crashed[0] + crashed[1] + crashed[2]
		mu.Unlock()
		if n == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	b.Wait()
	if crashed[0] != 1 || crashed[1] != 1 || crashed[2] != 1 {
		t.Fatalf("crashes %v, want one each", crashed)
	}
	var none Bots
	none.CrashNext() // no bots: nothing to do, no panic
}

func TestTicksOff(t *testing.T) {
	ticks, stop := Ticks(0)
	stop()
	if ticks != nil {
		t.Fatal("Ticks(0) ticks")
	}
	ticks, stop = Ticks(time.Millisecond)
	defer stop()
	if ticks == nil {
		t.Fatal("Ticks(1ms) has no channel")
	}
	<-ticks
}

// Follow shows the view at once and after each change, returns 0 when
// interrupted, and fails when the client's server goes away.
func TestFollow(t *testing.T) {
	sys := clustertest.Start(t, `
system: follow
secret: a-secret-of-sufficient-length
groups:
  - name: lobby
    visibility: external
`)
	lobby := sys.Server("lobby-1")
	var stderr bytes.Buffer
	f := NewFlags(cli.Invocation{Prog: "prog", Stderr: &stderr}, "cmd")

	ctx, cancel := context.WithCancel(context.Background())
	changed := make(chan struct{})
	shown := make(chan struct{})
	code := make(chan int, 1)
	c := lobby.Dial()
	go func() { code <- f.Follow(ctx, c, changed, func() { shown <- struct{}{} }) }()
	<-shown // at once
	changed <- struct{}{}
	<-shown // after the change
	cancel()
	if got := <-code; got != 0 {
		t.Fatalf("interrupted: code %d, want 0", got)
	}

	c = lobby.Dial()
	go func() { code <- f.Follow(context.Background(), c, nil, func() { shown <- struct{}{} }) }()
	<-shown
	lobby.Kill()
	if got := <-code; got != 1 || !strings.Contains(stderr.String(), "prog cmd: disconnected") {
		t.Fatalf("disconnected: code %d, stderr %q", got, stderr.String())
	}
}
