package logsample

import (
	"sync"
	"testing"
	"time"
)

func TestSampler(t *testing.T) {
	var mu sync.Mutex
	reports := map[string]int{}
	done := make(chan struct{}, 4)
	s := &Sampler{First: 3, Window: 50 * time.Millisecond, Report: func(key string, n int) {
		mu.Lock()
		reports[key] += n
		mu.Unlock()
		done <- struct{}{}
	}}
	logged := 0
	for range 100 {
		if s.Allow("refused") {
			logged++
		}
	}
	if !s.Allow("other") {
		t.Fatal("a second key shares the first one's budget")
	}
	if logged != 3 {
		t.Fatalf("logged %d of 100, want 3", logged)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("no report at the end of the window")
	}
	mu.Lock()
	if reports["refused"] != 97 {
		t.Fatalf("reported %v, want 97 suppressed", reports)
	}
	mu.Unlock()
	// A new window logs in full again.
	if !s.Allow("refused") {
		t.Fatal("the next window starts sampled")
	}
	for range 10 {
		s.Allow("refused")
	}
	s.Stop()
	mu.Lock()
	defer mu.Unlock()
	if reports["refused"] != 97+8 || reports["other"] != 0 {
		t.Fatalf("after Stop: %v", reports)
	}
	if s.Allow("refused") {
		t.Fatal("Allow after Stop")
	}
}
