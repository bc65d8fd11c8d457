package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/registry"
)

// stopRun ends the server of "run" after the first signal, or after it
// stopped by itself (a drain begun with POST /drain): it drains the server
// (cluster.Server.Drain: an external group's players are moved to the
// group's other servers within clients.drainTimeout; an internal group's
// server shuts down) within that timeout plus ShutdownTimeout, then closes
// the connector. A second signal (e.force) closes the server at once.
func (e *env) stopRun(g *config.Group, srv *cluster.Server, conn registry.Connector) error {
	limit := ShutdownTimeout
	if g.Visibility == config.External {
		limit += g.Clients.DrainTimeout.Duration()
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel() // also ends cancelOnForce's goroutine
	e.cancelOnForce(ctx, cancel)
	defer conn.Close()

	select {
	case <-srv.Done():
		return nil
	default:
	}
	switch {
	case srv.Draining():
		e.note(zerolog.InfoLevel, "%s run: waiting for the drain to end (interrupt again to stop at once)", e.prog)
	case g.Visibility == config.External:
		e.note(zerolog.InfoLevel, "%s run: draining: moving players to the group's other servers for up to %s (interrupt again to stop at once)", e.prog, g.Clients.DrainTimeout)
	default:
		e.note(zerolog.InfoLevel, "%s run: stopping (interrupt again to stop at once)", e.prog)
	}
	err := srv.Drain(ctx)
	if errors.Is(err, cluster.ErrDraining) {
		select {
		case <-srv.Done():
			err = nil
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if ctx.Err() != nil {
		// Drain or Shutdown returned at the deadline without waiting for
		// the server's goroutines, which may still use the connector:
		// Close waits for them.
		srv.Close()
		select {
		case <-e.force:
			return errors.New("stopped at once by a second signal")
		default:
			return fmt.Errorf("drain and shutdown took longer than %s: the rest was closed at once", limit)
		}
	}
	if err != nil && !errors.Is(err, cluster.ErrServerClosed) {
		return err
	}
	return nil
}
