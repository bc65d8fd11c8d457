package bots

import (
	"math"
	"sync"
	"time"
)

// Latency histogram: logarithmic buckets 5% wide from 1µs, so percentiles
// are within 5% of the truth in a fixed 4 KB whatever the number of
// samples. The last bucket holds everything from about 11 hours up.
const (
	histBase    = float64(time.Microsecond)
	histGrowth  = 1.05
	histBuckets = 500 // 1µs × 1.05^500 is about 11 hours
)

// histogram counts round trips. The zero value is empty and ready.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    time.Duration
}

func bucket(d time.Duration) int {
	if float64(d) <= histBase {
		return 0
	}
	i := int(math.Log(float64(d)/histBase) / math.Log(histGrowth))
	return min(i, histBuckets-1)
}

func (h *histogram) add(d time.Duration) {
	h.counts[bucket(d)]++
	h.n++
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the upper bound of the bucket holding the q-th sample
// (0 < q ≤ 1), capped at the largest sample; 0 when empty.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			if i == histBuckets-1 {
				return h.max
			}
			upper := time.Duration(histBase * math.Pow(histGrowth, float64(i+1)))
			return min(upper, h.max)
		}
	}
	return h.max
}

// RTT summarises round trips.
type RTT struct {
	Samples       uint64
	P50, P90, P99 time.Duration
	Max           time.Duration
}

func (h *histogram) summary() RTT {
	return RTT{Samples: h.n, P50: h.quantile(0.5), P90: h.quantile(0.9), P99: h.quantile(0.99), Max: h.max}
}

// recorder collects round trips from many goroutines: the samples of the
// current period and of the whole run.
type recorder struct {
	mu     sync.Mutex
	period histogram
	total  histogram
}

func (r *recorder) add(d time.Duration) {
	r.mu.Lock()
	r.period.add(d)
	r.mu.Unlock()
}

// cut ends the current period: it returns its summary and adds it to the
// total.
func (r *recorder) cut() RTT {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.period.summary()
	r.total.merge(&r.period)
	r.period = histogram{}
	return s
}

// overall returns the summary of the whole run (after a final cut).
func (r *recorder) overall() RTT {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total.summary()
}
