package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/registry"
)

// ErrDraining is returned by Drain and BeginDrain when a drain has already
// begun.
var ErrDraining = errors.New("cluster: server already draining")

// drainGrace bounds the shutdown that ends a drain begun by BeginDrain,
// after clients.drainTimeout.
const drainGrace = 10 * time.Second

// drainPoll is how often Drain looks whether its players have left.
const drainPoll = 20 * time.Millisecond

// Drain takes an external server out of its group without dropping its
// players: it stops taking new ones (a connect is answered with a Close of
// reason Draining), marks itself draining in the registry (Meta
// registry.MetaDraining = "1", when the connector is a registry.Updater),
// sends every connected player a Move naming the group's other servers
// that are not draining, least loaded first, waits up to
// clients.drainTimeout for them to leave, and then shuts down as Shutdown
// does, closing the players still there with reason Draining.
//
// On a server of an internal group Drain is Shutdown. ctx bounds the
// whole drain: when it ends, the wait stops and the shutdown closes every
// connection at once (see Shutdown). Drain returns ErrDraining when a
// drain has already begun and ErrServerClosed when the server is not
// running.
func (s *Server) Drain(ctx context.Context) error {
	if err := s.beginDrain(); err != nil {
		return err
	}
	if s.clients == nil {
		return s.Shutdown(ctx)
	}
	return s.drainClients(ctx)
}

// BeginDrain starts Drain on its own goroutine and returns at once, with
// ErrDraining or ErrServerClosed when Drain would. The drain is bounded by
// clients.drainTimeout and then 10 s for the shutdown; Done is closed when
// it has ended. On an internal group it starts a Shutdown bounded by 10 s.
func (s *Server) BeginDrain() error {
	if err := s.beginDrain(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.drainTimeout()+drainGrace)
	// Not a tracked goroutine: it ends in Shutdown, which waits for those.
	go func() {
		defer cancel()
		var err error
		if s.clients == nil {
			err = s.Shutdown(ctx)
		} else {
			err = s.drainClients(ctx)
		}
		if err != nil {
			s.log.Warn().Err(err).Msg("drain ended early")
		}
	}()
	return nil
}

// Draining reports whether Drain has begun.
func (s *Server) Draining() bool { return s.draining.Load() }

// drainTimeout is clients.drainTimeout; zero on an internal group.
func (s *Server) drainTimeout() time.Duration {
	if s.clients == nil {
		return 0
	}
	return s.group.Clients.DrainTimeout.Duration()
}

// beginDrain marks the server draining, once.
func (s *Server) beginDrain() error {
	if serverState(s.state.Load()) == stateNew {
		return ErrServerClosed // not started: nothing to drain
	}
	// A server still starting has not registered yet: let it finish.
	select {
	case <-s.startDone:
	case <-s.stopped:
	}
	if !s.running() {
		return ErrServerClosed
	}
	if !s.draining.CompareAndSwap(false, true) {
		return ErrDraining
	}
	return nil
}

// drainClients is Drain's work once the server is marked draining.
func (s *Server) drainClients(ctx context.Context) error {
	h := s.clients
	s.log.Info().Int("clients", int(h.count.Load())).Dur("drain_timeout", s.drainTimeout()).Msg("server draining")
	s.markDraining(ctx)
	urls := s.dir.moveURLs(ctx)
	move := protocol.AppendWS(nil, protocol.KindClientMove, 0, (&protocol.Move{Reason: protocol.ReasonDraining, URLs: urls}).AppendTo(nil))
	// The snapshot takes h.mu, after draining was set: a client admitted
	// later was refused (serveWS checks draining under h.mu).
	moved := 0
	for _, c := range h.snapshot() {
		if c.enqueue(move) == nil {
			moved++
		}
	}
	s.log.Info().Int("clients", moved).Strs("urls", urls).Msg("told clients to move")

	deadline := time.NewTimer(s.drainTimeout())
	defer deadline.Stop()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
wait:
	for h.count.Load() > 0 {
		select {
		case <-tick.C:
		case <-deadline.C:
			break wait
		case <-ctx.Done():
			break wait
		case <-s.stopped:
			break wait
		}
	}
	if left := h.count.Load(); left > 0 {
		s.log.Info().Int64("clients", left).Msg("drain timeout passed; closing the clients still here")
	} else {
		s.log.Info().Msg("every client left")
	}
	return s.Shutdown(ctx)
}

// markDraining sets registry.MetaDraining in the registered member, when
// the connector can update it; failing that, the server is still draining
// (it refuses new clients) and only directories learn of it later, from
// its /load answer.
func (s *Server) markDraining(ctx context.Context) {
	u, ok := s.reg.(registry.Updater)
	s.mu.Lock()
	self, registered := s.self, s.registered
	s.mu.Unlock()
	if !ok || !registered {
		s.log.Debug().Msg("registry connector cannot update the member: not marked draining there")
		return
	}
	self.Meta = maps.Clone(self.Meta)
	self.Meta[registry.MetaDraining] = "1"
	uctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := u.Update(uctx, self); err != nil {
		s.registryErrors.Add(1)
		s.log.Warn().Err(err).Msg("could not mark the server draining in the registry")
		return
	}
	s.mu.Lock()
	s.self = self
	s.mu.Unlock()
}

// clientURL is this server's client URL, as registered.
func (s *Server) clientURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.self.Meta[MetaClientURL]
}

// drainRefusal is the Close detail of a client refused while draining.
var drainRefusal = fmt.Sprintf("server draining; connect to another server of the group (%s lists them)", DirectoryPath)
