package cluster

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/plugins"
)

// CloudLatencyBuckets are the upper bounds, in seconds, of the cloud
// operation latency histogram.
var CloudLatencyBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// cloudCodeSlots holds one count per cloud.Code, the last slot for errors
// that carry no code (a cancelled context, ...).
const cloudCodeSlots = 16

// cloudMeter counts the cloud operations plugins and the embedder start
// on this server: per kind, the result codes and a latency histogram. All
// counters are atomic; recording allocates nothing.
type cloudMeter struct {
	ops [plugins.CloudOpUnsubscribe + 1]cloudOpMeter
}

type cloudOpMeter struct {
	codes   [cloudCodeSlots]atomic.Uint64
	buckets [len(CloudLatencyBuckets)]atomic.Uint64 // non-cumulative
	count   atomic.Uint64
	sumNs   atomic.Uint64
}

func (m *cloudMeter) record(kind plugins.CloudOpKind, start time.Time, err error) {
	slot := cloudCodeSlots - 1
	var ce *cloud.Error
	switch {
	case err == nil:
		slot = int(cloud.CodeOK)
	case errors.As(err, &ce) && int(ce.Code) < cloudCodeSlots-1:
		slot = int(ce.Code)
	}
	m.recordSlot(kind, start, slot)
}

// recordCode records an operation answered with code.
func (m *cloudMeter) recordCode(kind plugins.CloudOpKind, start time.Time, code cloud.Code) {
	slot := cloudCodeSlots - 1
	if int(code) < cloudCodeSlots-1 {
		slot = int(code)
	}
	if kind < plugins.CloudOpPost || kind > plugins.CloudOpUnsubscribe {
		return
	}
	m.recordSlot(kind, start, slot)
}

func (m *cloudMeter) recordSlot(kind plugins.CloudOpKind, start time.Time, slot int) {
	o := &m.ops[kind]
	d := time.Since(start)
	o.codes[slot].Add(1)
	sec := d.Seconds()
	for i, b := range CloudLatencyBuckets {
		if sec <= b {
			o.buckets[i].Add(1)
			break
		}
	}
	o.count.Add(1)
	o.sumNs.Add(uint64(d))
}

// CloudOpStats are the counters of one kind of cloud operation.
type CloudOpStats struct {
	Kind string // "post", "release", "get", "unsubscribe"
	// Source is who made them: "plugin" (this server's plugins and
	// embedder) or "client" (its game clients, through the cloud memory).
	Source string
	// Results counts operations by result code (label form: "ok",
	// "not_owner", ...; "error" for failures without a code).
	Results map[string]uint64
	// Buckets counts operations at or under each CloudLatencyBuckets
	// bound (cumulative); Count and Sum cover all of them.
	Buckets []uint64
	Count   uint64
	Sum     time.Duration
}

// CloudOps returns the cloud operations this server's plugins and embedder
// made (Source "plugin") and those of its game clients (Source "client"),
// per kind; kinds never used are left out.
func (s *Server) CloudOps() []CloudOpStats {
	out := s.cloudMeter.stats("plugin", nil)
	return s.clientCloudMeter.stats("client", out)
}

// stats appends the meter's counters of every kind used, under source.
func (m *cloudMeter) stats(source string, out []CloudOpStats) []CloudOpStats {
	for k := plugins.CloudOpPost; k <= plugins.CloudOpUnsubscribe; k++ {
		o := &m.ops[k]
		n := o.count.Load()
		if n == 0 {
			continue
		}
		st := CloudOpStats{Kind: k.String(), Source: source, Results: map[string]uint64{}, Count: n, Sum: time.Duration(o.sumNs.Load())}
		for c := range o.codes {
			if v := o.codes[c].Load(); v > 0 {
				name := "error"
				if c < cloudCodeSlots-1 {
					name = strings.ReplaceAll(cloud.Code(c).String(), " ", "_")
				}
				st.Results[name] += v
			}
		}
		var cum uint64
		for i := range o.buckets {
			cum += o.buckets[i].Load()
			st.Buckets = append(st.Buckets, cum)
		}
		out = append(out, st)
	}
	return out
}

// meteredCloud is a cloud-memory session whose operations are counted.
type meteredCloud struct {
	plugins.CloudMemory
	m *cloudMeter
}

// Unwrap returns the provider's session, for its own tests.
func (c meteredCloud) Unwrap() plugins.CloudMemory { return c.CloudMemory }

func (c meteredCloud) Post(ctx context.Context, key cloud.Key, data []byte) error {
	start := time.Now()
	err := c.CloudMemory.Post(ctx, key, data)
	c.m.record(plugins.CloudOpPost, start, err)
	return err
}

func (c meteredCloud) Release(ctx context.Context, keys ...cloud.Key) error {
	start := time.Now()
	err := c.CloudMemory.Release(ctx, keys...)
	c.m.record(plugins.CloudOpRelease, start, err)
	return err
}

func (c meteredCloud) Get(ctx context.Context, q cloud.Query) (*cloud.Result, error) {
	start := time.Now()
	r, err := c.CloudMemory.Get(ctx, q)
	c.m.record(plugins.CloudOpGet, start, err)
	return r, err
}

func (c meteredCloud) Unsubscribe(ctx context.Context, keys []cloud.Key, uploaders ...plugins.ClientRef) error {
	start := time.Now()
	err := c.CloudMemory.Unsubscribe(ctx, keys, uploaders...)
	c.m.record(plugins.CloudOpUnsubscribe, start, err)
	return err
}
