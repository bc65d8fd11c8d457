package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cloudrift/cloudrift/internal/backoff"
	"github.com/cloudrift/cloudrift/registry"
)

// ErrRegistryUnreachable is wrapped by Start when the registry stayed
// unavailable for the system's registry.startTimeout.
var ErrRegistryUnreachable = errors.New("cluster: registry unreachable")

// Bounds of the waits between registration attempts.
const (
	registerRetryMin = 250 * time.Millisecond
	registerRetryMax = 10 * time.Second
)

// register registers self. While the connector reports the registry
// unavailable (registry.ErrUnavailable: not up yet, no leader), it tries
// again with backoff, logging each failed attempt with its number, error
// and the wait before the next one, until registry.startTimeout has passed
// since the first attempt; then it gives up with ErrRegistryUnreachable,
// naming the bound and the last error (which names the registry's
// address). Any other error, ctx ending or the server closing ends it at
// once.
func (s *Server) register(ctx context.Context, self registry.Member) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel) // Close during Start
	defer stop()
	bound := s.sys.Registry.StartTimeout.Duration()
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := s.reg.Register(ctx, self)
		if err == nil {
			if attempt > 1 {
				s.log.Info().Int("attempts", attempt).Dur("waited", time.Since(start).Round(time.Millisecond)).
					Msg("registered: the registry is reachable")
			}
			return nil
		}
		s.registryErrors.Add(1)
		if !errors.Is(err, registry.ErrUnavailable) || ctx.Err() != nil {
			return fmt.Errorf("cluster: register %s: %w", s.id, err)
		}
		left := bound - time.Since(start)
		if left <= 0 {
			return fmt.Errorf("%w: registering %s: gave up after %s (registry.startTimeout), %d attempts: %w",
				ErrRegistryUnreachable, s.id, bound, attempt, err)
		}
		wait := min(backoff.Policy{Min: registerRetryMin, Max: registerRetryMax}.Delay(attempt), left)
		s.log.Warn().Int("attempt", attempt).Err(err).Dur("retry_in", wait).Dur("start_timeout", bound).
			Msg("registry unavailable; registering again after the wait")
		if !backoff.Sleep(ctx, wait) {
			return fmt.Errorf("cluster: register %s: %w (while waiting for the registry: %w)", s.id, context.Cause(ctx), err)
		}
	}
}
