package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/cloudrift/cloudrift/internal/backoff"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
)

// startDialer starts the dial loop of an upstream remote unless one runs.
func (r *remote) startDialer() {
	s := r.s
	s.mu.Lock()
	if r.dialCancel != nil || !s.running() || r.retired.Load() {
		s.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	r.dialCancel = cancel
	s.mu.Unlock()
	if !s.goTracked(func() { r.dialLoop(ctx) }) {
		r.stopDialer()
	}
}

func (r *remote) stopDialer() {
	r.s.mu.Lock()
	cancel := r.dialCancel
	r.dialCancel = nil
	r.s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// endDialIfUnlisted reports whether the registry no longer lists r, and if
// so forgets the dialer that calls it, so that a snapshot listing r again
// starts a new one: the check and the forgetting happen under evMu, which
// applySnapshot holds when it lists r again.
func (r *remote) endDialIfUnlisted() bool {
	r.evMu.Lock()
	defer r.evMu.Unlock()
	if r.inRegistry {
		return false
	}
	r.stopDialer()
	return true
}

// permanentRefusal reports reasons that redialling the same incarnation
// cannot fix: the dialer stops instead of looping against a peer that keeps
// refusing it.
func permanentRefusal(reason protocol.Reason) bool {
	switch reason {
	case protocol.ReasonAuth, protocol.ReasonWrongSystem, protocol.ReasonNotDownstream, protocol.ReasonVersion:
		return true
	}
	return false
}

// dialLoop dials r, serves the link, and redials with jittered exponential
// backoff, until ctx ends (the registry dropped r, or shutdown), the peer
// refuses for good, or the peer said it is leaving. The wait grows with
// every redial and falls back to links.backoffMin once a link outlived
// links.backoffMax.
func (r *remote) dialLoop(ctx context.Context) {
	s := r.s
	log := s.log.With().Str("peer", r.id).Str("peer_group", r.g.name).Logger()
	policy := backoff.Policy{Min: s.links.BackoffMin.Duration(), Max: s.links.BackoffMax.Duration()}
	waits := 0    // redials since the last long-lived link
	failures := 0 // consecutive failed dials, for the log
	for ctx.Err() == nil && s.running() && !r.leaving.Load() {
		l, err := s.dial(ctx, r)
		if err == nil {
			failures = 0
			start := time.Now()
			l.run()
			if time.Since(start) > policy.Max {
				waits = 0
			}
			// The registry dropped the server (for leaveGrace)
			// while the link was up: do not redial it. A later
			// snapshot listing it again starts a new dialer.
			if r.endDialIfUnlisted() {
				return
			}
		}
		waits++
		delay := policy.Delay(waits)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var le *plugins.CloseError
			if errors.As(err, &le) && permanentRefusal(le.Reason) {
				log.Error().Err(err).Msg("peer refuses this server for good; not redialling this incarnation")
				return
			}
			failures++
			ev := log.Debug()
			if failures == 1 || failures%20 == 0 {
				ev = log.Warn()
			}
			ev.Err(err).Int("failures", failures).Dur("retry_in", delay).Msg("dial failed")
		}
		if !backoff.Sleep(ctx, delay) {
			return
		}
	}
}
