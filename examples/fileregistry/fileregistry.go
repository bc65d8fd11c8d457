// Package fileregistry is an example registry connector a studio writes for
// its own discovery backend: the members of a system are small JSON files
// in a directory every server can reach (a shared volume, or one host's
// disk for several processes), one file per member, watched by polling.
//
// A binary knows the connector once it imports this package; the system
// file then names it:
//
//	registry:
//	  type: file
//	  settings:
//	    dir: /var/run/mygame   # required
//	    poll: 200ms            # how often a watch reads the directory
//	    ttl: 5s                # a member not renewed for this long is gone
//
// # Layout and liveness
//
// Member m of system S is the file DIR/S/GROUP/ID.json (GROUP and ID
// path-escaped), written whole to a temporary file and renamed into place,
// so a reader never sees half a member. The connector renews the file's
// modification time every TTL/3; a watch lists only files renewed within
// TTL, so a crashed server drops out at most TTL after its last renewal.
// Servers sharing a directory across hosts need their clocks in step to
// well within TTL. A crashed server's file stays until the same ID
// registers again; it is never listed.
//
// A connector renews and removes only a file that holds its own
// incarnation, so a restarted replica that registered the same ID is never
// removed by its predecessor's late Close.
package fileregistry

import (
	"errors"
	"fmt"
	"time"

	"github.com/cloudrift/cloudrift/registry"
)

// Type is the connector's name in the system file's registry block.
const Type = "file"

// Defaults for the zero values of Settings.
const (
	DefaultPoll = 200 * time.Millisecond
	DefaultTTL  = 5 * time.Second
)

// ErrInvalidConfig is returned for settings the connector cannot use.
var ErrInvalidConfig = errors.New("fileregistry: invalid settings")

// Settings is the registry block's `settings:` for this connector.
type Settings struct {
	// Dir holds every system's member files. Required.
	Dir string `yaml:"dir"`
	// Poll is how often a watch reads its group's directory. Zero means
	// DefaultPoll.
	Poll time.Duration `yaml:"poll"`
	// TTL is how long a member file stays listed without renewal. Zero
	// means DefaultTTL; at least 3 × Poll, so a live member is never missed.
	TTL time.Duration `yaml:"ttl"`
}

// Validate checks the settings and fills the zero values.
func (s *Settings) Validate() error {
	if s.Dir == "" {
		return fmt.Errorf("%w: dir is required", ErrInvalidConfig)
	}
	if s.Poll < 0 || s.TTL < 0 {
		return fmt.Errorf("%w: poll %v and ttl %v must not be negative", ErrInvalidConfig, s.Poll, s.TTL)
	}
	if s.Poll == 0 {
		s.Poll = DefaultPoll
	}
	if s.TTL == 0 {
		s.TTL = max(DefaultTTL, 3*s.Poll)
	}
	if s.TTL < 3*s.Poll {
		return fmt.Errorf("%w: ttl %v is below 3 × poll (%v)", ErrInvalidConfig, s.TTL, 3*s.Poll)
	}
	return nil
}

func init() {
	registry.Register(Type, func(s *Settings, opts registry.Options) (registry.Connector, error) {
		c, err := New(*s, opts)
		if err != nil {
			return nil, err // not a nil *Connector in a non-nil interface
		}
		return c, nil
	})
}
