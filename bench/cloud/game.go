package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloudrift/cloudrift/plugins"
)

// gamePlugin is what a studio would build without cloud memory: a plugin
// of its own game servers that keeps shared state in Redis. On an
// external (client) server it answers its game clients' messages:
//
//   - tagSet: SET the client's key (bench:client:SERVER:ID) to the payload,
//     then answer tagSet with an empty payload;
//   - tagGet: GET bench:get:N (N = payload[0] mod getKeys) and answer
//     tagGet with the value;
//   - tagPublish: PUBLISH the payload to gameChannel (no answer).
//
// and every client server SUBSCRIBEs to gameChannel and forwards each
// message to all its game clients (tagFan). On a world (internal) server it
// runs no hook: the benchmark calls its Host's CloudMemory and its Redis
// client directly, from many goroutines, as a world plugin would.
//
// Without a Redis address (rdb nil) it kicks a client that sends one of
// these messages, saying why, and only hands out its Host.
type gamePlugin struct {
	rdb     *redis.Client // nil: no Redis
	forward bool          // subscribe to gameChannel and forward to clients

	host plugins.Host

	mu      sync.Mutex
	clients map[uint64]plugins.Client

	sub    *redis.PubSub
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

const gamePluginName = "benchgame"

// gameChannel is the channel of the game plugins' fan-out, apart from the
// reference's fanChannel whose subscribers count the PUBLISH's receivers.
const gameChannel = "bench:game:fan"

// Message tags of gamePlugin.
const (
	tagSet     = 20
	tagGet     = 21
	tagPublish = 22
	tagFan     = 23
)

var (
	_ plugins.Starter                   = (*gamePlugin)(nil)
	_ plugins.Stopper                   = (*gamePlugin)(nil)
	_ plugins.ClientConnectedHandler    = (*gamePlugin)(nil)
	_ plugins.ClientDisconnectedHandler = (*gamePlugin)(nil)
	_ plugins.ClientMessageHandler      = (*gamePlugin)(nil)
)

func init() {
	plugins.Register(plugins.Info{Name: gamePluginName, New: func() plugins.Plugin { return newGamePlugin("", false) }})
}

// newGamePlugin makes the plugin of one server; redisAddr "" means no
// Redis. The Redis pool holds 50 connections, one per concurrent client
// or goroutine of the benchmark.
func newGamePlugin(redisAddr string, forward bool) *gamePlugin {
	p := &gamePlugin{forward: forward, clients: make(map[uint64]plugins.Client)}
	if redisAddr != "" {
		p.rdb = redisClient(redisAddr, 50)
	}
	return p
}

// Start implements plugins.Starter: on a client server with Redis, the
// subscription that forwards fan-out messages to every game client.
func (p *gamePlugin) Start(ctx context.Context, h plugins.Host) error {
	p.host = h
	if p.rdb == nil || !p.forward {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p.sub = p.rdb.Subscribe(sctx, gameChannel)
	if _, err := p.sub.Receive(sctx); err != nil { // the confirmation
		p.sub.Close()
		return fmt.Errorf("SUBSCRIBE %s: %w", gameChannel, err)
	}
	lctx, lcancel := context.WithCancel(context.Background())
	p.cancel = lcancel
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			m, err := p.sub.ReceiveMessage(lctx)
			if err != nil {
				return
			}
			p.forwardAll([]byte(m.Payload))
		}
	}()
	return nil
}

// forwardAll sends data to every game client of this server.
func (p *gamePlugin) forwardAll(data []byte) {
	p.mu.Lock()
	cs := make([]plugins.Client, 0, len(p.clients))
	for _, c := range p.clients {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	for _, c := range cs {
		_ = c.Send(tagFan, data) // a client gone meanwhile misses it
	}
}

// Stop implements plugins.Stopper.
func (p *gamePlugin) Stop(context.Context) error {
	if p.cancel != nil {
		p.cancel()
		p.sub.Close()
		p.wg.Wait()
	}
	if p.rdb != nil {
		return p.rdb.Close()
	}
	return nil
}

// ClientConnected implements plugins.ClientConnectedHandler.
func (p *gamePlugin) ClientConnected(c plugins.Client) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clients[c.Ref().ID] = c
	return nil
}

// ClientDisconnected implements plugins.ClientDisconnectedHandler.
func (p *gamePlugin) ClientDisconnected(c plugins.Client, _ error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.clients, c.Ref().ID)
	return nil
}

// errNoRedisHere: a Redis message reached a plugin without Redis.
var errNoRedisHere = errors.New("benchgame: no Redis configured on this server")

// ClientMessage implements plugins.ClientMessageHandler. It runs on the
// client's read goroutine: one Redis command in flight per client, as the
// SDK client has one request in flight in the closed loop.
func (p *gamePlugin) ClientMessage(c plugins.Client, m plugins.Message) error {
	if m.Tag != tagSet && m.Tag != tagGet && m.Tag != tagPublish {
		return nil // the echo plugin's
	}
	if p.rdb == nil {
		c.Kick(errNoRedisHere.Error()) // the client learns why at once
		return errNoRedisHere
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch m.Tag {
	case tagSet:
		ref := c.Ref()
		if err := p.rdb.Set(ctx, "bench:client:"+ref.Server+":"+strconv.FormatUint(ref.ID, 10), m.Payload, 0).Err(); err != nil {
			return fmt.Errorf("SET: %w", err)
		}
		return c.Send(tagSet, nil)
	case tagGet:
		if len(m.Payload) != 1 {
			return fmt.Errorf("benchgame: get of %d bytes, want 1", len(m.Payload))
		}
		b, err := p.rdb.Get(ctx, redisGetKey(int(m.Payload[0]))).Bytes()
		if err != nil {
			return fmt.Errorf("GET: %w", err)
		}
		return c.Send(tagGet, b)
	default:
		return p.rdb.Publish(ctx, gameChannel, m.Payload).Err()
	}
}
