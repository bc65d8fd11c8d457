package backoff

import (
	"context"
	"testing"
	"time"
)

func TestStepDoublesAndCaps(t *testing.T) {
	p := Policy{Min: 100 * time.Millisecond, Max: time.Second}
	for _, c := range []struct {
		failures      int
		lo, hiExclude time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 200 * time.Millisecond, 400 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second},
		{1000, 500 * time.Millisecond, time.Second},
	} {
		if got := p.Step(c.failures, 0); got != c.lo {
			t.Errorf("Step(%d, 0) = %v, want %v", c.failures, got, c.lo)
		}
		if got := p.Step(c.failures, 0.999999); got < c.lo || got >= c.hiExclude {
			t.Errorf("Step(%d, ~1) = %v, want in [%v, %v)", c.failures, got, c.lo, c.hiExclude)
		}
		for range 100 {
			if got := p.Delay(c.failures); got < c.lo || got > c.hiExclude {
				t.Fatalf("Delay(%d) = %v, want in [%v, %v]", c.failures, got, c.lo, c.hiExclude)
			}
		}
	}
}

func TestOddPolicies(t *testing.T) {
	if got := (Policy{}).Delay(3); got != 0 {
		t.Errorf("zero policy waits %v", got)
	}
	// Max below Min is taken as Min.
	if got := (Policy{Min: time.Second, Max: time.Millisecond}).Step(5, 0); got != 500*time.Millisecond {
		t.Errorf("Max below Min: got %v", got)
	}
	// A huge Min does not overflow.
	if got := (Policy{Min: time.Duration(1 << 61), Max: time.Duration(1 << 62)}).Step(40, 0); got <= 0 {
		t.Errorf("overflow: got %v", got)
	}
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("a short sleep did not pass")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Error("a cancelled sleep passed")
	}
	if Sleep(ctx, 0) {
		t.Error("a zero sleep on a cancelled context passed")
	}
}
