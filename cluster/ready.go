package cluster

import (
	"errors"
	"fmt"

	"github.com/cloudrift/cloudrift/plugins"
)

// ErrNotReady is wrapped by Ready's answer when the server should not be
// sent traffic yet (or any more).
var ErrNotReady = errors.New("not ready")

// Ready returns nil when the server is running, registered, and linked to
// at least one server of every upstream group the registry lists servers
// of; otherwise an error wrapping ErrNotReady that says why. A draining or
// closed server is never ready.
func (s *Server) Ready() error {
	switch serverState(s.state.Load()) {
	case stateNew, stateStarting:
		return fmt.Errorf("%w: starting", ErrNotReady)
	case stateDraining:
		return fmt.Errorf("%w: draining", ErrNotReady)
	case stateClosed:
		return fmt.Errorf("%w: closed", ErrNotReady)
	}
	if s.draining.Load() {
		return fmt.Errorf("%w: draining", ErrNotReady)
	}
	s.mu.Lock()
	registered := s.registered
	s.mu.Unlock()
	if !registered {
		return fmt.Errorf("%w: not registered", ErrNotReady)
	}
	for _, g := range s.Groups() {
		if g.Direction == plugins.Upstream && g.Members > 0 && g.LinksUp == 0 {
			return fmt.Errorf("%w: no link to group %q (%d servers listed)", ErrNotReady, g.Group, g.Members)
		}
	}
	return nil
}
