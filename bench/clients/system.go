package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/registry/embedded"
)

// Tags of the benchmark's client messages.
const (
	// tagEcho: the gate (external) server's plugin sends the payload
	// straight back with Client.Send: the single-hop baseline.
	tagEcho uint16 = 1
	// tagRelay: the gate forwards the payload to the world (internal)
	// server, whose plugin sends it back with Host.SendToClient.
	tagRelay uint16 = 2
)

// refHeader is the size of the client ID the gate puts in front of a
// relayed payload; the world learns the holding server from the link the
// message came on.
const refHeader = 8

// relaySystem is an external "gate" group that connects to an internal
// "world" group. Client limits are raised so the benchmark measures the
// runtime, not its rate limiter: rate and burst of clientRate per client.
// socketDir is links.socketDir: "" links the two over this host's link
// socket (the default), config.SocketDirOff over loopback TCP, as
// servers of different machines link.
func relaySystem(clientRate int, socketDir string) (*config.System, error) {
	sys := &config.System{
		System: "benchclients",
		Secret: "bench-clients-secret-of-sufficient-length",
		Groups: []config.Group{
			{
				Name: "gate", Visibility: config.External, ConnectsTo: []string{"world"},
				Clients: config.Clients{
					Rate:  clientRate,
					Burst: clientRate,
					// Generous: a window of in-flight 1 KB messages must
					// never look like a slow client.
					SendQueueBytes: 4 << 20,
					ReadTimeout:    config.Duration(5 * time.Minute),
				},
			},
			{Name: "world", Visibility: config.Internal},
		},
		Links: config.Links{
			Heartbeat:        config.Duration(time.Second),
			HandshakeTimeout: config.Duration(5 * time.Second),
			BackoffMin:       config.Duration(10 * time.Millisecond),
			BackoffMax:       config.Duration(100 * time.Millisecond),
			SocketDir:        socketDir,
		},
	}
	if err := sys.Validate(); err != nil {
		return nil, err
	}
	return sys, nil
}

// gate is the external server's plugin: it echoes tagEcho messages and
// forwards tagRelay messages to the world server.
type gate struct {
	world atomic.Pointer[remoteServer]
	bufs  sync.Pool // *[]byte scratch for the forwarded message
}

// remoteServer boxes an interface for atomic.Pointer.
type remoteServer struct{ plugins.RemoteServer }

var (
	_ plugins.ServerConnectedHandler = (*gate)(nil)
	_ plugins.ClientMessageHandler   = (*gate)(nil)
)

func (g *gate) ServerConnected(s plugins.RemoteServer) error {
	if s.Group() == "world" {
		g.world.Store(&remoteServer{s})
	}
	return nil
}

func (g *gate) ClientMessage(c plugins.Client, m plugins.Message) error {
	switch m.Tag {
	case tagEcho:
		return c.Send(tagEcho, m.Payload)
	case tagRelay:
		w := g.world.Load()
		if w == nil {
			return errors.New("gate: no world server linked")
		}
		bp, _ := g.bufs.Get().(*[]byte)
		if bp == nil {
			bp = new([]byte)
		}
		b := binary.BigEndian.AppendUint64((*bp)[:0], c.Ref().ID)
		b = append(b, m.Payload...)
		err := w.Send(tagRelay, b) // Send copies b
		*bp = b
		g.bufs.Put(bp)
		return err
	}
	return fmt.Errorf("gate: unexpected tag %d", m.Tag)
}

// world is the internal server's plugin: it sends each relayed payload
// back to the client named in its header, with Host.SendToClient.
type world struct {
	host  plugins.Host
	gates atomic.Int64 // gate links up
}

var (
	_ plugins.Starter                   = (*world)(nil)
	_ plugins.ServerConnectedHandler    = (*world)(nil)
	_ plugins.ServerDisconnectedHandler = (*world)(nil)
	_ plugins.ServerMessageHandler      = (*world)(nil)
)

func (w *world) Start(_ context.Context, h plugins.Host) error {
	w.host = h
	return nil
}

func (w *world) ServerConnected(plugins.RemoteServer) error {
	w.gates.Add(1)
	return nil
}

func (w *world) ServerDisconnected(plugins.RemoteServer, error) error {
	w.gates.Add(-1)
	return nil
}

func (w *world) ServerMessage(s plugins.RemoteServer, m plugins.Message) error {
	if m.Tag != tagRelay || len(m.Payload) < refHeader {
		return fmt.Errorf("world: unexpected message tag %d, %d bytes", m.Tag, len(m.Payload))
	}
	ref := plugins.ClientRef{Server: s.ID(), ID: binary.BigEndian.Uint64(m.Payload)}
	return w.host.SendToClient(ref, tagRelay, m.Payload[refHeader:])
}

// relayRig is a running gate server and world server in this process, on
// an embedded registry, linked over this host's link socket or loopback
// TCP.
type relayRig struct {
	URL   string // the gate's WebSocket endpoint
	gate  *cluster.Server
	world *cluster.Server
	hub   *embedded.Hub
	conns []interface{ Close() error }
}

// startRelayRig starts the world server, then the gate, and waits (at
// most 10 s) until the link between them is up on both sides, over the
// transport socketDir asks for (relaySystem).
func startRelayRig(clientRate int, socketDir string) (*relayRig, error) {
	sys, err := relaySystem(clientRate, socketDir)
	if err != nil {
		return nil, err
	}
	r := &relayRig{hub: embedded.NewHub()}
	wp, gp := &world{}, &gate{}
	start := func(group, id string, p plugins.Plugin) (*cluster.Server, error) {
		conn := r.hub.Connector()
		r.conns = append(r.conns, conn)
		s, err := cluster.New(cluster.Options{System: sys, Group: group, ID: id, Registry: conn, Plugins: []plugins.Plugin{p}})
		if err != nil {
			return nil, err
		}
		if err := s.Start(context.Background()); err != nil {
			return nil, err
		}
		return s, nil
	}
	if r.world, err = start("world", "world-1", wp); err != nil {
		r.Close()
		return nil, err
	}
	if r.gate, err = start("gate", "gate-1", gp); err != nil {
		r.Close()
		return nil, err
	}
	r.URL = "ws://" + r.gate.Addr().String() + "/"
	deadline := time.Now().Add(10 * time.Second)
	for gp.world.Load() == nil || wp.gates.Load() < 1 {
		if time.Now().After(deadline) {
			r.Close()
			return nil, errors.New("relay rig: gate and world did not link within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	want := "unix"
	if socketDir == config.SocketDirOff {
		want = "tcp"
	}
	for _, p := range r.gate.Peers() {
		if p.Transport != want {
			r.Close()
			return nil, fmt.Errorf("relay rig: the link runs over %q, not %q (the server logs say why)", p.Transport, want)
		}
	}
	return r, nil
}

// Close stops both servers and their registry connectors.
func (r *relayRig) Close() {
	for _, s := range []*cluster.Server{r.gate, r.world} {
		if s != nil {
			s.Close()
		}
	}
	for _, c := range r.conns {
		c.Close()
	}
}
