package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/registry/embedded"

	// The cloud memory plugins.
	"github.com/cloudrift/cloudrift/plugins/cloudmemory"
)

// echoPlugin answers every game-client message of tag echoTag with the
// same message: the floor the transport puts under every cloud operation
// (see echo).
type echoPlugin struct{}

const echoPluginName, echoTag = "benchecho", 7

func (echoPlugin) ClientMessage(c plugins.Client, m plugins.Message) error {
	if m.Tag != echoTag {
		return nil // the game plugin's
	}
	return c.Send(m.Tag, m.Payload)
}

func init() {
	plugins.Register(plugins.Info{Name: echoPluginName, New: func() plugins.Plugin { return echoPlugin{} }})
}

// cloudSystem is one external group ("client", with the echo plugin and
// the game plugin) and one internal group ("world", with the game plugin),
// both connected to a cloud group of replicas. Client limits are raised so
// that the benchmark measures the cloud memory, not the rate limiter.
func cloudSystem() (*config.System, error) {
	var settings yaml.Node
	// Default cloud limits, but subscribers in the thousands and a
	// generous operation timeout.
	if err := yaml.Unmarshal([]byte("{maxSubscriptionsPerClient: 16, opTimeout: 30s, getTimeout: 10s}"), &settings); err != nil {
		return nil, err
	}
	sys := &config.System{
		System: "benchcloud",
		Secret: "bench-cloud-secret-of-sufficient-length",
		Groups: []config.Group{
			{
				Name: "client", Visibility: config.External, ConnectsTo: []string{"cloud"},
				Plugins: []config.Plugin{{Name: echoPluginName}, {Name: gamePluginName}},
				Clients: config.Clients{
					Rate: 10_000_000, Burst: 10_000_000,
					MaxClients:     10_000,
					SendQueueBytes: 4 << 20,
					ReadTimeout:    config.Duration(5 * time.Minute),
				},
			},
			{
				Name: "world", Visibility: config.Internal, ConnectsTo: []string{"cloud"},
				Plugins: []config.Plugin{{Name: gamePluginName}},
			},
			{
				Name: "cloud", Visibility: config.Internal,
				Plugins: []config.Plugin{{Name: cloudmemory.Name, Settings: *settings.Content[0]}},
			},
		},
		Links: config.Links{
			HandshakeTimeout: config.Duration(5 * time.Second),
			BackoffMin:       config.Duration(10 * time.Millisecond),
			BackoffMax:       config.Duration(100 * time.Millisecond),
			QueueBytes:       64 << 20,
			// Loopback TCP, as the Redis designs beside it reach Redis:
			// the comparison holds the transport the same. Servers of one
			// host link over Unix sockets by default, for less.
			SocketDir: config.SocketDirOff,
		},
	}
	if err := sys.Validate(); err != nil {
		return nil, err
	}
	return sys, nil
}

// clientServers is the number of client servers of a rig; the fan-out's
// subscribers are spread over them.
const clientServers = 2

// cloudRig is a running system: replicas cloud servers, one world server
// and clientServers client servers, over loopback.
type cloudRig struct {
	Replicas int
	URLs     []string // the client servers' WebSocket endpoints
	// World is the world server's game plugin; nil when the servers run
	// in another process.
	World *gamePlugin

	hub     *embedded.Hub
	servers []*cluster.Server
	conns   []*embedded.Connector
	stop    func() // ends the servers' process, when they run in one
	pid     int    // the servers' process, when they run in one
}

// startCloud starts a rig and waits until every server is linked to every
// replica and the cloud memory answers. With redisAddr, the game plugins
// use the Redis server there.
func startCloud(replicas int, redisAddr string) (*cloudRig, error) {
	sys, err := cloudSystem()
	if err != nil {
		return nil, err
	}
	r := &cloudRig{Replicas: replicas, hub: embedded.NewHub()}
	start := func(group, id string, ps ...plugins.Plugin) (*cluster.Server, error) {
		conn := r.hub.Connector()
		s, err := cluster.New(cluster.Options{System: sys, Group: group, ID: id, Listen: "127.0.0.1:0", Registry: conn, Plugins: ps})
		if err == nil {
			err = s.Start(context.Background())
		}
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("start %s: %w", id, err)
		}
		r.servers = append(r.servers, s)
		r.conns = append(r.conns, conn)
		return s, nil
	}
	for i := 1; i <= replicas; i++ {
		if _, err := start("cloud", fmt.Sprintf("cloud-%d", i)); err != nil {
			r.Close()
			return nil, err
		}
	}
	r.World = newGamePlugin(redisAddr, false)
	linked := make([]*cluster.Server, 0, 1+clientServers)
	w, err := start("world", "world-1", r.World)
	if err != nil {
		r.World.Stop(context.Background())
		r.Close()
		return nil, err
	}
	linked = append(linked, w)
	for i := 1; i <= clientServers; i++ {
		game := newGamePlugin(redisAddr, true)
		cs, err := start("client", fmt.Sprintf("client-%d", i), echoPlugin{}, game)
		if err != nil {
			game.Stop(context.Background())
			r.Close()
			return nil, err
		}
		linked = append(linked, cs)
		r.URLs = append(r.URLs, "ws://"+cs.Addr().String()+"/")
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range linked {
		for s.Stats().LinksUp < replicas {
			if time.Now().After(deadline) {
				r.Close()
				return nil, fmt.Errorf("%s linked to %d of %d replicas after 20s", s.ID(), s.Stats().LinksUp, replicas)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Every replica answers a Get of keys spread over all of them.
	c, err := r.dial(0, hooks{})
	if err != nil {
		r.Close()
		return nil, err
	}
	defer c.Close()
	keys := make([]cloud.Key, 32)
	for i := range keys {
		keys[i] = cloud.Key{Primary: "bench/ready", Secondary: uint32(i)}
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := c.Get(ctx, cloud.Query{Keys: keys})
		cancel()
		if err == nil && !res.Partial {
			return r, nil
		}
		if time.Now().After(deadline) {
			r.Close()
			return nil, fmt.Errorf("the cloud memory does not answer: %v", errors.Join(err, errPartial(res)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func errPartial(res *cloud.Result) error {
	if res != nil && res.Partial {
		return fmt.Errorf("partial result, missing %v", res.Missing)
	}
	return nil
}

// hooks receive a game client's notifications and messages on its read
// goroutine; a nil one leaves them on the client's channels.
type hooks struct {
	cloud   func(cloud.Notification)
	message func(client.Message)
}

// dial connects one game client to client server srv (0-based).
func (r *cloudRig) dial(srv int, h hooks) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return client.Dial(ctx, client.Options{URL: r.URLs[srv], OnCloud: h.cloud, Handler: h.message, QueueSize: 1024})
}

// dialMany connects n clients, 32 at a time, all to the first client
// server, or with spread alternately to every client server; hooksOf(i)
// gives the i-th its hooks (nil: none).
func (r *cloudRig) dialMany(n int, spread bool, hooksOf func(i int) hooks) ([]*client.Client, error) {
	cs := make([]*client.Client, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var h hooks
			if hooksOf != nil {
				h = hooksOf(i)
			}
			srv := 0
			if spread {
				srv = i % len(r.URLs)
			}
			cs[i], errs[i] = r.dial(srv, h)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeAll(cs)
		return nil, err
	}
	return cs, nil
}

func closeAll(cs []*client.Client) {
	var wg sync.WaitGroup
	for _, c := range cs {
		if c != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.Close()
			}()
		}
	}
	wg.Wait()
}

// Close stops every server, clients' servers first.
func (r *cloudRig) Close() {
	if r.stop != nil {
		r.stop()
		return
	}
	for i := len(r.servers) - 1; i >= 0; i-- {
		r.servers[i].Close()
	}
	for _, c := range r.conns {
		c.Close()
	}
}
