package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cloudrift/cloudrift/client"
)

// latencyResult holds the round-trip times of one run, each sorted.
type latencyResult struct {
	Echo, Relay []time.Duration
}

// percentile returns the p-th percentile (0 < p < 100) of sorted d.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(float64(len(d)) * p / 100)
	return d[min(i, len(d)-1)]
}

// errPayload reports a reply that is not the message sent.
var errPayload = errors.New("reply does not match the message sent")

// measureRoundTrips runs n echo and n relay round trips of size-byte
// payloads on one client, after warm of each that are not counted. The
// two kinds alternate message by message, so both see the same machine
// state. One message is in flight at a time; the SDK's Handler times the
// reply and sends the next message from the read goroutine, so no
// goroutine hand-off is timed. ctx bounds the whole run.
func measureRoundTrips(ctx context.Context, url string, n, warm, size int) (latencyResult, error) {
	total := 2 * (warm + n)
	res := latencyResult{Echo: make([]time.Duration, 0, n), Relay: make([]time.Duration, 0, n)}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i)
	}
	base := time.Now()
	var (
		sentAt atomic.Int64 // ns since base of the message in flight
		step   int          // replies received; read goroutine only
		failed error        // read goroutine only, until done is closed
		cl     atomic.Pointer[client.Client]
		done   = make(chan struct{})
	)
	tagOf := func(i int) uint16 {
		if i%2 == 0 {
			return tagEcho
		}
		return tagRelay
	}
	handler := func(m client.Message) {
		d := time.Since(base) - time.Duration(sentAt.Load())
		if step >= total {
			return
		}
		if m.Tag != tagOf(step) || len(m.Payload) != size || m.Payload[size-1] != payload[size-1] {
			failed = fmt.Errorf("round trip %d: tag %d, %d bytes: %w", step, m.Tag, len(m.Payload), errPayload)
			step = total
			close(done)
			return
		}
		if step >= 2*warm {
			if m.Tag == tagEcho {
				res.Echo = append(res.Echo, d)
			} else {
				res.Relay = append(res.Relay, d)
			}
		}
		step++
		if step == total {
			close(done)
			return
		}
		sentAt.Store(int64(time.Since(base)))
		if err := cl.Load().Send(tagOf(step), payload); err != nil {
			failed = fmt.Errorf("send %d: %w", step, err)
			step = total
			close(done)
		}
	}
	c, err := client.Dial(ctx, client.Options{URL: url, Handler: handler})
	if err != nil {
		return res, fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	cl.Store(c)
	sentAt.Store(int64(time.Since(base)))
	if err := c.Send(tagOf(0), payload); err != nil {
		return res, fmt.Errorf("send 0: %w", err)
	}
	select {
	case <-done:
	case <-c.Done():
		// The session ended; done may still have been closed just before.
		select {
		case <-done:
		default:
			return res, fmt.Errorf("client ended after %d round trips: %w", len(res.Echo)+len(res.Relay), c.Err())
		}
	case <-ctx.Done():
		// Close waits for the read goroutine, after which res is ours.
		c.Close()
		return res, fmt.Errorf("round trips: %w", ctx.Err())
	}
	if failed != nil {
		return res, failed
	}
	slices.Sort(res.Echo)
	slices.Sort(res.Relay)
	return res, nil
}
