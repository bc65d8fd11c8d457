// Package registry defines how a server finds the other servers of its system:
// the Connector interface, the Member it registers and watches, and the
// sentinel errors every connector returns, and the connector types a binary
// knows by name (Register, Open), which the system file's registry block
// names:
//
//	registry:
//	  type: consul
//	  settings: {address: 127.0.0.1:8500}
//
// A connector package registers itself in init, so a binary knows the
// connectors it imports: registry/embedded ("embedded", in-process, for dev
// mode and tests) and registry/consul ("consul") ship with cloudrift; a
// studio adds its own with a blank import. Every implementation passes
// registry/registrytest.
package registry

import (
	"context"
	"errors"
	"maps"
	"slices"
)

// Sentinel errors shared by every connector. Implementations wrap them with
// %w; callers compare with errors.Is.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("registry: connector closed")
	// ErrNotRegistered is returned by Deregister when nothing was registered.
	ErrNotRegistered = errors.New("registry: not registered")
	// ErrAlreadyRegistered is returned by a second Register on one connector.
	// A connector registers exactly one member: the server that owns it.
	ErrAlreadyRegistered = errors.New("registry: already registered")
	// ErrInvalidMember is returned by Register for a member without an ID,
	// group or address.
	ErrInvalidMember = errors.New("registry: invalid member")
	// ErrUnavailable is wrapped by Register and Deregister when the
	// registry could not be reached or said it cannot serve for now
	// (connection refused, a timeout, no leader elected): the same call
	// may succeed later. Errors that a retry cannot fix (a refused token,
	// an invalid member) do not wrap it.
	ErrUnavailable = errors.New("registry: unavailable")
)

// Member is one server as the registry knows it.
type Member struct {
	// ID is unique within the system. It is stable across restarts of the
	// same replica when the operator sets it, random otherwise.
	ID string
	// Group is the name of the server's group in the system file.
	Group string
	// Address is host:port where the server accepts links (internal
	// groups) or game clients (external groups).
	Address string
	// Incarnation is random per process start. A member seen again with
	// the same ID and a new incarnation is a new server: links to the old
	// one are dropped and remade.
	Incarnation uint64
	// Meta carries free-form string metadata (protocol version, ports for
	// metrics and health). Nil and empty are equivalent.
	Meta map[string]string
}

// Equal reports whether m and o describe the same member, metadata included.
func (m Member) Equal(o Member) bool {
	return m.ID == o.ID && m.Group == o.Group && m.Address == o.Address &&
		m.Incarnation == o.Incarnation && maps.Equal(m.Meta, o.Meta)
}

// Validate reports ErrInvalidMember when a required field is missing.
func (m Member) Validate() error {
	switch {
	case m.ID == "":
		return errors.Join(ErrInvalidMember, errors.New("empty ID"))
	case m.Group == "":
		return errors.Join(ErrInvalidMember, errors.New("empty group"))
	case m.Address == "":
		return errors.Join(ErrInvalidMember, errors.New("empty address"))
	}
	return nil
}

// SortMembers sorts ms by ID in place, the order in which every connector
// publishes snapshots.
func SortMembers(ms []Member) {
	slices.SortFunc(ms, func(a, b Member) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
}

// Connector registers one server and reports the members of the groups it
// watches. All methods are safe for concurrent use.
type Connector interface {
	// Register announces self to the registry. A connector registers at
	// most one member; a second call returns ErrAlreadyRegistered. The
	// member stays registered, kept alive by the connector, until
	// Deregister or Close.
	Register(ctx context.Context, self Member) error

	// Deregister removes the registered member. Watchers of its group see
	// a snapshot without it. It returns ErrNotRegistered when nothing is
	// registered.
	Deregister(ctx context.Context) error

	// Watch reports the members of group as full snapshots sorted by ID:
	// the first snapshot (possibly empty) comes promptly, later ones on
	// every change; a member is removed by its absence. Delivery is
	// latest-wins: a slow reader skips intermediate snapshots but always
	// receives the newest. A snapshot is never sent twice in a row with
	// equal content. The channel is closed when ctx is done or the
	// connector is closed. Errors reaching the registry never publish an
	// empty set: the last known set stands until the registry answers.
	// The returned slices are owned by the receiver.
	Watch(ctx context.Context, group string) (<-chan []Member, error)

	// Close deregisters (best effort), ends every watch and releases
	// resources. It is safe to call more than once.
	Close() error
}

// Updater is implemented by connectors that can change the registered
// member's metadata in place, as a draining server marks itself (see
// MetaDraining). It is optional: a caller type-asserts for it and, on a
// connector without it, the change is not published.
type Updater interface {
	// Update replaces the registered member's Meta with self.Meta.
	// self.ID, Group, Address and Incarnation must be those registered
	// (ErrInvalidMember otherwise); ErrNotRegistered when nothing is
	// registered; ErrClosed after Close. Watchers of the group see a
	// snapshot with the new Meta (none when it is unchanged).
	Update(ctx context.Context, self Member) error
}

// MetaDraining is the Meta key a server sets to "1" while it drains: it
// takes no new game clients and moves those it holds to the group's other
// servers, so directories list it last and Moves never name it.
const MetaDraining = "draining"

// CheckUpdate returns ErrInvalidMember (wrapped) when next changes
// anything of registered but Meta. Connectors' Update use it.
func CheckUpdate(registered, next Member) error {
	if registered.ID != next.ID || registered.Group != next.Group ||
		registered.Address != next.Address || registered.Incarnation != next.Incarnation {
		return errors.Join(ErrInvalidMember, errors.New("Update may change Meta only"))
	}
	return nil
}
