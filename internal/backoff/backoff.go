// Package backoff computes the jittered exponential waits between retries
// that every reconnecting or retrying loop of cloudrift uses: link
// dialers, the client SDK's reconnector, the Consul watch and the cloud
// memory's caller side.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy bounds the waits. The zero Policy waits nothing.
type Policy struct {
	// Min is the wait after the first failure; each further consecutive
	// failure doubles it.
	Min time.Duration
	// Max caps the wait. A Max below Min is taken as Min.
	Max time.Duration
}

// Delay returns the wait after failures consecutive failures (values
// below 1 count as 1): Min doubled failures-1 times, capped at Max, then
// jittered down by up to half, so that callers that failed together do
// not retry together.
func (p Policy) Delay(failures int) time.Duration {
	return p.Step(failures, rand.Float64())
}

// Step is Delay with the jitter given: jitter in [0, 1) scales the upper
// half of the wait, so Step(n, 0) is the shortest wait and Step(n, 1)
// approaches the longest. It lets tests check the schedule exactly.
func (p Policy) Step(failures int, jitter float64) time.Duration {
	d := p.ceiling(failures)
	half := d / 2
	return d - half + time.Duration(jitter*float64(half))
}

// ceiling returns the unjittered wait after failures consecutive failures.
func (p Policy) ceiling(failures int) time.Duration {
	maxD := max(p.Max, p.Min)
	if p.Min <= 0 {
		return 0
	}
	shift := max(failures, 1) - 1
	if shift >= 62 || p.Min > maxD>>shift {
		return maxD
	}
	return min(p.Min<<shift, maxD)
}

// Sleep waits d, or less when ctx ends first. It reports whether the
// whole wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
