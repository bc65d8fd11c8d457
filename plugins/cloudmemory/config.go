// Package cloudmemory is the cloud memory: connection-scoped rows and
// subscriptions shared by every server and game client of a system,
// after RakNet's CloudServer/CloudClient.
//
// It registers one plugin, "cloudmemory" (Name), with two sides:
//
//   - Service, run by the servers of a cloud-memory group (the replicas),
//     which list the plugin in the system file. Each key (primary string, secondary uint32) is owned
//     by one replica, chosen by rendezvous hashing over the replicas the
//     registry lists; the owner stores the key's rows (one per uploader),
//     serializes every change to it, and notifies the servers that
//     subscribe to it.
//   - Caller, which the plugin attaches (plugins.Info.Attach) to every
//     server whose group connects to a cloud-memory group, with the cloud
//     group's settings. It gives the server's plugins the
//     plugins.CloudMemory API (Host.CloudMemory), forwards the operations
//     of an external server's game clients with their identity (the client
//     SDK's Post, Release, Get, Unsubscribe), enforces their limits, fans
//     notifications out to the local subscribers, and is the source of
//     truth for the lifetime of the rows uploaded through it: when the
//     set of replicas changes it places its rows and subscriptions with
//     their new owners, and subscribers get a resync snapshot.
//
// A binary that runs a system with a cloud-memory group imports this
// package for its side effect:
//
//	import _ "github.com/cloudrift/cloudrift/plugins/cloudmemory"
//
// # Semantics
//
// A row is (key, uploader) → data. Post creates or overwrites the
// uploader's row; Release deletes it; rows of a game client are deleted
// when it disconnects, rows of a server when it goes, and every row that
// came through an external server when that server is gone (after
// ServerGrace). Subscribers get Updated (with a created flag) and Deleted
// (with the last value) notifications, and a Resync snapshot whenever
// their subscription had to be placed again. Get returns rows in query
// key order, then uploader order (server ID, then client ID), after
// Offset and within Limit, with the total count, a truncated flag (the
// download byte limit) and a partial flag with the keys missing (their
// owner did not serve them within GetTimeout: it did not answer, was not
// linked, or was still receiving their rows after taking them over); an
// answer without it holds every row of its keys. Get with Subscribe is
// atomic with the subscription at the key's owner.
package cloudmemory

import (
	"errors"
	"fmt"
	"time"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/plugins/extension"
)

// Name is the cloud memory's plugin name in the system file.
const Name = "cloudmemory"

func init() {
	plugins.Register(plugins.Info{Name: Name, New: func() plugins.Plugin { return new(Service) }, Attach: attach})
}

// attach makes the Caller of a server whose group connects to the
// cloud-memory group a.Group, with that group's settings.
func attach(a plugins.Attachment) (plugins.Plugin, error) {
	c := &Caller{group: a.Group}
	if err := a.Spec.Decode(&c.settings); err != nil {
		return nil, err
	}
	return c, nil
}

// errNotServerHost: Start got a Host that is not a cloudrift server's,
// which the cloud memory needs to send its frames.
var errNotServerHost = errors.New("cloud memory: the host is not a cloudrift server's")

// extensionHost returns h's extension.Host.
func extensionHost(h plugins.Host) (extension.Host, error) {
	eh, ok := extension.Of(h)
	if !ok {
		return nil, fmt.Errorf("%w: %T", errNotServerHost, h)
	}
	return eh, nil
}

// Defaults of Config's zero values.
const (
	DefaultMaxUploadBytesPerClient   = 64 << 10
	DefaultMaxRowBytes               = 8 << 10
	DefaultMaxKeysPerQuery           = 64
	DefaultMaxBytesPerDownload       = 128 << 10
	DefaultMaxSubscriptionsPerClient = 256
	DefaultServerGrace               = 5 * time.Second
	DefaultGetTimeout                = 2 * time.Second
	DefaultOpTimeout                 = 5 * time.Second
	DefaultResyncDelay               = 250 * time.Millisecond
)

// Config is the cloud memory's settings: the `settings:` of the
// cloudmemory plugin in the system file. The Caller on every server that
// connects to the cloud group uses the same settings, so limits are
// enforced where the operations enter the system. Every zero value takes
// its default.
type Config struct {
	// MaxUploadBytesPerClient caps the data bytes of all of one game
	// client's rows together (a server's own rows are not counted). A Post
	// past it fails with CloudUploadLimit. Zero means 64 KiB.
	MaxUploadBytesPerClient int `yaml:"maxUploadBytesPerClient"`
	// MaxRowBytes caps one row's data. Zero means 8 KiB.
	MaxRowBytes int `yaml:"maxRowBytes"`
	// MaxKeysPerQuery caps the keys of one Get, Release or Unsubscribe.
	// Zero means 64.
	MaxKeysPerQuery int `yaml:"maxKeysPerQuery"`
	// MaxBytesPerDownload caps the encoded rows one Get (or resync)
	// returns; past it the result is truncated, with at least one row.
	// Keep it below the external groups' sendQueueBytes. Zero means
	// 128 KiB.
	MaxBytesPerDownload int `yaml:"maxBytesPerDownload"`
	// MaxSubscriptionsPerClient caps the keys one game client subscribes
	// to. Zero means 256.
	MaxSubscriptionsPerClient int `yaml:"maxSubscriptionsPerClient"`
	// ServerGrace is how long a replica keeps the rows of a server whose
	// link went down, so a briefly cut link loses nothing; then they are
	// deleted and subscribers notified. Zero means 5s.
	ServerGrace config.Duration `yaml:"serverGrace"`
	// GetTimeout bounds a Get: replicas that have not answered by then are
	// reported missing (partial). Zero means 2s.
	GetTimeout config.Duration `yaml:"getTimeout"`
	// OpTimeout bounds a Post, Release or Unsubscribe waiting for its
	// owner replica. Zero means 5s.
	OpTimeout config.Duration `yaml:"opTimeout"`
	// ResyncDelay is how long a subscription whose owner changed (a
	// replica joined, left or handed keys over) waits before it reads the
	// resync snapshot its subscribers get, so that the rows the uploaders'
	// servers are placing again at the same moment are in it; rows placed
	// later still arrive as Updated notifications. Zero means 250ms.
	ResyncDelay config.Duration `yaml:"resyncDelay"`
}

// withDefaults returns c with its zero values filled.
func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxUploadBytesPerClient, DefaultMaxUploadBytesPerClient)
	def(&c.MaxRowBytes, DefaultMaxRowBytes)
	def(&c.MaxKeysPerQuery, DefaultMaxKeysPerQuery)
	def(&c.MaxBytesPerDownload, DefaultMaxBytesPerDownload)
	def(&c.MaxSubscriptionsPerClient, DefaultMaxSubscriptionsPerClient)
	defD := func(v *config.Duration, d time.Duration) {
		if *v == 0 {
			*v = config.Duration(d)
		}
	}
	defD(&c.ServerGrace, DefaultServerGrace)
	defD(&c.GetTimeout, DefaultGetTimeout)
	defD(&c.OpTimeout, DefaultOpTimeout)
	defD(&c.ResyncDelay, DefaultResyncDelay)
	return c
}

// Validate rejects negative values.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"maxUploadBytesPerClient", int64(c.MaxUploadBytesPerClient)},
		{"maxRowBytes", int64(c.MaxRowBytes)},
		{"maxKeysPerQuery", int64(c.MaxKeysPerQuery)},
		{"maxBytesPerDownload", int64(c.MaxBytesPerDownload)},
		{"maxSubscriptionsPerClient", int64(c.MaxSubscriptionsPerClient)},
		{"serverGrace", int64(c.ServerGrace)},
		{"getTimeout", int64(c.GetTimeout)},
		{"opTimeout", int64(c.OpTimeout)},
		{"resyncDelay", int64(c.ResyncDelay)},
	} {
		if f.v < 0 {
			return fmt.Errorf("%s must not be negative", f.name)
		}
	}
	if c.MaxKeysPerQuery > 1<<16-1 {
		return fmt.Errorf("maxKeysPerQuery %d exceeds %d", c.MaxKeysPerQuery, 1<<16-1)
	}
	return nil
}
