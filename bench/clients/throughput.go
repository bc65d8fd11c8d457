package main

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/internal/backoff"
)

// throughputResult is one pipelined run.
type throughputResult struct {
	Messages int64         // round trips completed in the measured interval
	Elapsed  time.Duration // the measured interval
	Size     int           // payload bytes per message
	// CPU is what this process (clients and servers) used in the
	// measured interval; zero where getrusage(2) fails.
	CPU time.Duration
}

// CPUPerMessage returns the process's CPU time per round trip in
// microseconds: steadier than the rate on a machine doing other work.
func (r throughputResult) CPUPerMessage() float64 {
	if r.Messages == 0 {
		return 0
	}
	return float64(r.CPU) / 1e3 / float64(r.Messages)
}

// processCPU returns the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PerSecond returns round trips per second.
func (r throughputResult) PerSecond() float64 { return float64(r.Messages) / r.Elapsed.Seconds() }

// MBPerSecond returns payload megabytes (10^6) per second in one
// direction: each round trip carries Size bytes out and Size bytes back.
func (r throughputResult) MBPerSecond() float64 { return r.PerSecond() * float64(r.Size) / 1e6 }

// pipeline is a set of SDK clients that each keep a window of messages in
// flight: every reply sends the next message, from the SDK's read
// goroutine, until the client's quota of messages is sent.
type pipeline struct {
	tag     uint16
	size    int
	payload []byte
	pcs     []*pipeClient
}

// pipeClient is one connection of a pipeline.
type pipeClient struct {
	c        *client.Client
	quota    atomic.Int64 // most messages to send
	sent     atomic.Int64
	received atomic.Int64
	bad      atomic.Int64 // replies with the wrong tag or size
}

// send sends the next message unless the quota is used up.
func (pc *pipeClient) send(tag uint16, payload []byte) error {
	if pc.sent.Add(1) > pc.quota.Load() {
		pc.sent.Add(-1)
		return nil
	}
	return pc.c.Send(tag, payload)
}

// dialPipeline connects conns clients that will send size-byte messages
// with tag; their quotas are zero until start.
func dialPipeline(ctx context.Context, url string, conns, size int, tag uint16) (*pipeline, error) {
	p := &pipeline{tag: tag, size: size, payload: make([]byte, size)}
	for i := range conns {
		pc := &pipeClient{}
		ready := make(chan struct{})
		handler := func(m client.Message) {
			<-ready // closed once pc.c is set (before anything is sent)
			pc.received.Add(1)
			if m.Tag != tag || len(m.Payload) != size {
				pc.bad.Add(1)
			}
			pc.send(tag, p.payload) // an error ends the client; check sees it
		}
		c, err := client.Dial(ctx, client.Options{URL: url, Handler: handler})
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("dial client %d: %w", i, err)
		}
		pc.c = c
		close(ready)
		p.pcs = append(p.pcs, pc)
	}
	return p, nil
}

// Close closes every client.
func (p *pipeline) Close() {
	for _, pc := range p.pcs {
		pc.c.Close()
	}
}

// start gives client i the quota quotas(i) and sends its first window.
func (p *pipeline) start(window int, quotas func(i int) int64) error {
	for i, pc := range p.pcs {
		pc.quota.Store(quotas(i))
	}
	for i, pc := range p.pcs {
		for range window {
			if err := pc.send(p.tag, p.payload); err != nil {
				return fmt.Errorf("client %d: first window: %w", i, err)
			}
		}
	}
	return nil
}

// stop lets no client send more: each quota becomes what it has sent.
func (p *pipeline) stop() {
	for _, pc := range p.pcs {
		for {
			q := pc.quota.Load()
			if pc.quota.CompareAndSwap(q, min(q, pc.sent.Load())) {
				break
			}
		}
	}
}

// received sums the replies received.
func (p *pipeline) received() int64 {
	var n int64
	for _, pc := range p.pcs {
		n += pc.received.Load()
	}
	return n
}

// check reports a client that ended or received a wrong reply.
func (p *pipeline) check() error {
	for i, pc := range p.pcs {
		select {
		case <-pc.c.Done():
			return fmt.Errorf("client %d ended: %w", i, pc.c.Err())
		default:
		}
		if b := pc.bad.Load(); b > 0 {
			return fmt.Errorf("client %d: %d bad replies: %w", i, b, errPayload)
		}
	}
	return nil
}

// drain waits until every message sent has its reply, or ctx ends.
func (p *pipeline) drain(ctx context.Context) error {
	for i, pc := range p.pcs {
		for pc.received.Load() < pc.sent.Load() {
			if err := p.check(); err != nil {
				return err
			}
			if !backoff.Sleep(ctx, 100*time.Microsecond) {
				return fmt.Errorf("client %d: %d of %d replies: %w", i, pc.received.Load(), pc.sent.Load(), ctx.Err())
			}
		}
	}
	return p.check()
}

// runN sends n messages in all, spread evenly over the clients, and waits
// for every reply.
func (p *pipeline) runN(ctx context.Context, window, n int) error {
	k := len(p.pcs)
	if err := p.start(window, func(i int) int64 {
		q := n / k
		if i < n%k {
			q++
		}
		return int64(q)
	}); err != nil {
		return err
	}
	return p.drain(ctx)
}

// measureThroughput dials conns clients that each keep window messages of
// size bytes with the given tag in flight, counts the replies during dur
// after warm, then stops sending and waits for the replies still in
// flight, so the next run starts on a quiet system. ctx bounds the whole
// run.
func measureThroughput(ctx context.Context, url string, conns, window, size int, tag uint16, warm, dur time.Duration) (throughputResult, error) {
	res := throughputResult{Size: size}
	p, err := dialPipeline(ctx, url, conns, size, tag)
	if err != nil {
		return res, err
	}
	defer p.Close()
	if err := p.start(window, func(int) int64 { return math.MaxInt64 }); err != nil {
		return res, err
	}
	if !backoff.Sleep(ctx, warm) {
		return res, ctx.Err()
	}
	n0, t0, cpu0 := p.received(), time.Now(), processCPU()
	if !backoff.Sleep(ctx, dur) {
		return res, ctx.Err()
	}
	n1, t1, cpu1 := p.received(), time.Now(), processCPU()
	p.stop()
	res.Messages, res.Elapsed, res.CPU = n1-n0, t1.Sub(t0), cpu1-cpu0
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return res, p.drain(dctx)
}
