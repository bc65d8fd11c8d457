package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/internal/backoff"
	"github.com/cloudrift/cloudrift/plugins"
)

// loadResult is one closed-loop run: every worker has one operation in
// flight at a time.
type loadResult struct {
	Ops     int64
	Elapsed time.Duration
	Lat     []time.Duration // sorted; only when latencies were recorded
	// CPU is the CPU time each process of the meter used while the
	// operations were counted; nil when it could not be read.
	CPU []time.Duration
}

// CPUPerOp is the CPU time of all the metered processes per operation
// (0 when unknown).
func (r loadResult) CPUPerOp() time.Duration {
	if r.CPU == nil || r.Ops == 0 {
		return 0
	}
	var sum time.Duration
	for _, t := range r.CPU {
		sum += t
	}
	return sum / time.Duration(r.Ops)
}

// PerSec is the throughput.
func (r loadResult) PerSec() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

// runLoad runs op in workers goroutines, each in a loop, for warm (not
// counted) then d (counted), and returns the operations that completed in
// d, the CPU time meter's processes used meanwhile and, with record, their
// latencies. The first error ends the run.
func runLoad(workers int, warm, d time.Duration, record bool, meter cpuMeter, op func(ctx context.Context, worker int) error) (loadResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), warm+d+30*time.Second)
	defer cancel()
	const (
		warming = iota
		measuring
		stopping
	)
	var phase atomic.Int32
	counts := make([]int64, workers)
	lats := make([][]time.Duration, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				t0 := time.Now()
				if err := op(ctx, w); err != nil {
					errs[w] = err
					cancel()
					return
				}
				switch phase.Load() {
				case measuring:
					counts[w]++
					if record {
						lats[w] = append(lats[w], time.Since(t0))
					}
				case stopping:
					return
				}
			}
		}()
	}
	backoff.Sleep(ctx, warm)
	phase.Store(measuring)
	start := time.Now()
	cpu0 := meter.sample()
	backoff.Sleep(ctx, d)
	phase.Store(stopping)
	elapsed := time.Since(start)
	cpu := meter.since(cpu0)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return loadResult{}, err
	}
	r := loadResult{Elapsed: elapsed, CPU: cpu}
	for w := range workers {
		r.Ops += counts[w]
		r.Lat = append(r.Lat, lats[w]...)
	}
	slices.Sort(r.Lat)
	return r, nil
}

// percentile returns the p-th percentile of sorted durations.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(float64(len(d)) * p / 100)
	return d[min(i, len(d)-1)]
}

// Keys of the benchmark. Post and SET write key i of worker i; Get and GET
// read one of getKeys keys, loaded beforehand.
const getKeys = 16

func postKey(i int) cloud.Key { return cloud.Key{Primary: "bench/post", Secondary: uint32(i)} }
func getKey(i int) cloud.Key {
	return cloud.Key{Primary: "bench/get", Secondary: uint32(i % getKeys)}
}

// redisGetKey is the Redis key GET reads for worker i.
func redisGetKey(i int) string { return "bench:get:" + strconv.Itoa(i%getKeys) }

var fanKey = cloud.Key{Primary: "bench/fan"}

const fanChannel = "bench:fan"

// echo is the transport's floor: worker i sends a message that the client
// server's echo plugin answers at once, over the same WebSocket stack as
// Post but with no cloud memory and no server-to-server hop.
func echo(cs []*client.Client, payload []byte) func(context.Context, int) error {
	return func(ctx context.Context, w int) error {
		if err := cs[w].Send(echoTag, payload); err != nil {
			return err
		}
		select {
		case _, ok := <-cs[w].Messages():
			if !ok {
				return cs[w].Err()
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// cloudPost is the Post workload: worker i overwrites its row.
func cloudPost(cs []*client.Client, payload []byte) func(context.Context, int) error {
	return func(ctx context.Context, w int) error { return cs[w].Post(ctx, postKey(w), payload) }
}

// cloudGet is the Get workload: worker i reads one key of one row.
func cloudGet(cs []*client.Client, size int) func(context.Context, int) error {
	return func(ctx context.Context, w int) error {
		res, err := cs[w].Get(ctx, cloud.Query{Keys: []cloud.Key{getKey(w)}})
		if err != nil {
			return err
		}
		if len(res.Rows) != 1 || len(res.Rows[0].Data) != size {
			return fmt.Errorf("Get %s: %d rows", getKey(w), len(res.Rows))
		}
		return nil
	}
}

// loadCloudGets posts the rows the Get workload reads, from c, which must
// stay connected while they are read.
func loadCloudGets(c *client.Client, payload []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range getKeys {
		if err := c.Post(ctx, getKey(i), payload); err != nil {
			return err
		}
	}
	return nil
}

// ask is one request of a game client to its client server's game
// plugin: send tag with payload, then wait for the answer of the same tag
// and size bytes.
func ask(ctx context.Context, c *client.Client, tag uint16, payload []byte, size int) error {
	if err := c.Send(tag, payload); err != nil {
		return err
	}
	select {
	case m, ok := <-c.Messages():
		if !ok {
			return c.Err()
		}
		if m.Tag != tag || len(m.Payload) != size {
			return fmt.Errorf("answer to tag %d: tag %d, %d bytes, want %d", tag, m.Tag, len(m.Payload), size)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// serverSet is the Redis design's write: worker i's message, which its
// client server's game plugin stores with SET before answering.
func serverSet(cs []*client.Client, payload []byte) func(context.Context, int) error {
	return func(ctx context.Context, w int) error { return ask(ctx, cs[w], tagSet, payload, 0) }
}

// serverGet is the Redis design's read: the game plugin GETs one of the
// getKeys keys and answers with its value.
func serverGet(cs []*client.Client, size int) func(context.Context, int) error {
	return func(ctx context.Context, w int) error {
		return ask(ctx, cs[w], tagGet, []byte{byte(w % getKeys)}, size)
	}
}

// worldKey is the row goroutine i of the world server's plugin overwrites.
func worldKey(i int) cloud.Key { return cloud.Key{Primary: "bench/world", Secondary: uint32(i)} }

// worldPost is the server-side write: goroutine i of a world server's
// plugin overwrites its row through the plugin's cloud memory.
func worldPost(cm plugins.CloudMemory, payload []byte) func(context.Context, int) error {
	return func(ctx context.Context, w int) error { return cm.Post(ctx, worldKey(w), payload) }
}

// worldGetKey is the key goroutine i of the world server's plugin reads:
// one of getKeys keys, each holding one row the world server posted.
func worldGetKey(i int) cloud.Key {
	return cloud.Key{Primary: "bench/worldget", Secondary: uint32(i % getKeys)}
}

// worldGet is the server-side read of one key of one row.
func worldGet(cm plugins.CloudMemory, size int) func(context.Context, int) error {
	return func(ctx context.Context, w int) error {
		res, err := cm.Get(ctx, cloud.Query{Keys: []cloud.Key{worldGetKey(w)}})
		if err != nil {
			return err
		}
		if len(res.Rows) != 1 || len(res.Rows[0].Data) != size {
			return fmt.Errorf("Get %s: %d rows", worldGetKey(w), len(res.Rows))
		}
		return nil
	}
}

// loadWorldGets posts the rows worldGet reads, as the world server.
func loadWorldGets(cm plugins.CloudMemory, payload []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range getKeys {
		if err := cm.Post(ctx, worldGetKey(i), payload); err != nil {
			return err
		}
	}
	return nil
}

func redisSet(rdb *redis.Client, payload []byte) func(context.Context, int) error {
	return func(ctx context.Context, w int) error {
		return rdb.Set(ctx, "bench:post:"+strconv.Itoa(w), payload, 0).Err()
	}
}

func redisGet(rdb *redis.Client, size int) func(context.Context, int) error {
	return func(ctx context.Context, w int) error {
		b, err := rdb.Get(ctx, redisGetKey(w)).Bytes()
		if err != nil {
			return err
		}
		if len(b) != size {
			return fmt.Errorf("GET: %d bytes", len(b))
		}
		return nil
	}
}

func loadRedisGets(rdb *redis.Client, payload []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range getKeys {
		if err := rdb.Set(ctx, redisGetKey(i), payload, 0).Err(); err != nil {
			return err
		}
	}
	return nil
}

// fanCounter counts the subscribers that received round seq's message
// and closes the round's channel when all n have.
type fanCounter struct {
	n    int64
	seq  atomic.Uint64
	got  atomic.Int64
	done atomic.Pointer[chan struct{}]
}

// start arms a round and returns its channel.
func (f *fanCounter) start(seq uint64) chan struct{} {
	ch := make(chan struct{})
	f.got.Store(0)
	f.done.Store(&ch)
	f.seq.Store(seq)
	return ch
}

// receive records one subscriber's message.
func (f *fanCounter) receive(seq uint64) {
	if seq != f.seq.Load() {
		return
	}
	if f.got.Add(1) == f.n {
		close(*f.done.Load())
	}
}

// fanout measures rounds × (one message to n subscribers) on one side:
// publish sends round seq's message; counter sees the deliveries.
func fanRound(counter *fanCounter, seq uint64, publish func(ctx context.Context, data []byte) error) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data := binary.BigEndian.AppendUint64(nil, seq)
	ch := counter.start(seq)
	t0 := time.Now()
	if err := publish(ctx, data); err != nil {
		return 0, err
	}
	select {
	case <-ch:
		return time.Since(t0), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("round %d: %d of %d subscribers got it in 30s", seq, counter.got.Load(), counter.n)
	}
}

// fanClients is n game clients spread over the client servers, each
// subscribed to fanKey and connected to its server's game plugin, and a
// publisher on the first client server. It measures one message to all
// of them in either design.
type fanClients struct {
	cloud fanCounter // Updated notifications of fanKey
	game  fanCounter // tagFan messages from the game plugins
	subs  []*client.Client
	pub   *client.Client
}

func newFanClients(r *cloudRig, n int) (*fanClients, error) {
	f := &fanClients{cloud: fanCounter{n: int64(n)}, game: fanCounter{n: int64(n)}}
	h := hooks{
		cloud: func(nt cloud.Notification) {
			if nt.Type == cloud.NotifyUpdated && nt.Key == fanKey && len(nt.Row.Data) == 8 {
				f.cloud.receive(binary.BigEndian.Uint64(nt.Row.Data))
			}
		},
		message: func(m client.Message) {
			if m.Tag == tagFan && len(m.Payload) == 8 {
				f.game.receive(binary.BigEndian.Uint64(m.Payload))
			}
		},
	}
	subs, err := r.dialMany(n, true, func(int) hooks { return h })
	if err != nil {
		return nil, err
	}
	f.subs = subs
	var wg sync.WaitGroup
	errs := make([]error, n)
	sem := make(chan struct{}, 32)
	for i, c := range subs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, errs[i] = c.Get(ctx, cloud.Query{Keys: []cloud.Key{fanKey}, Subscribe: true})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		f.Close()
		return nil, err
	}
	if f.pub, err = r.dial(0, hooks{}); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// cloudRound: one Post of the publisher to fanKey.
func (f *fanClients) cloudRound(seq uint64) (time.Duration, error) {
	return fanRound(&f.cloud, seq, func(ctx context.Context, data []byte) error { return f.pub.Post(ctx, fanKey, data) })
}

// gameRound: the publisher asks its client server's game plugin to
// PUBLISH; every client server's plugin forwards it to its clients.
func (f *fanClients) gameRound(seq uint64) (time.Duration, error) {
	return fanRound(&f.game, seq, func(_ context.Context, data []byte) error { return f.pub.Send(tagPublish, data) })
}

func (f *fanClients) Close() {
	closeAll(append(f.subs, f.pub))
}

// redisFan is n Redis connections subscribed to fanChannel, and a
// publisher.
type redisFan struct {
	counter fanCounter
	rdb     *redis.Client
	subs    []*redis.PubSub
	wg      sync.WaitGroup
	cancel  context.CancelFunc
}

func newRedisFan(s *redisServer, n int) (*redisFan, error) {
	f := &redisFan{counter: fanCounter{n: int64(n)}, rdb: s.client(1)}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	for range n {
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		ps := f.rdb.Subscribe(sctx, fanChannel)
		_, err := ps.Receive(sctx) // the subscription's confirmation
		scancel()
		if err != nil {
			ps.Close()
			f.Close()
			return nil, fmt.Errorf("SUBSCRIBE: %w", err)
		}
		f.subs = append(f.subs, ps)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for {
				m, err := ps.ReceiveMessage(ctx)
				if err != nil {
					return
				}
				if len(m.Payload) == 8 {
					f.counter.receive(binary.BigEndian.Uint64([]byte(m.Payload)))
				}
			}
		}()
	}
	return f, nil
}

func (f *redisFan) round(seq uint64) (time.Duration, error) {
	return fanRound(&f.counter, seq, func(ctx context.Context, data []byte) error {
		n, err := f.rdb.Publish(ctx, fanChannel, data).Result()
		if err == nil && n != f.counter.n {
			err = fmt.Errorf("PUBLISH reached %d subscribers, want %d", n, f.counter.n)
		}
		return err
	})
}

func (f *redisFan) Close() {
	f.cancel()
	for _, ps := range f.subs {
		ps.Close()
	}
	f.wg.Wait()
	f.rdb.Close()
}
