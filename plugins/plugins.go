// Package plugins is what a game plugin sees of cloudrift: registration by
// name, the optional lifecycle and event hooks the runtime finds by type
// assertion, the Host API through which a plugin reaches the rest of the
// system (its linked servers, game clients anywhere, the cloud memory), and
// the CloudFilter hook that authorizes cloud-memory operations.
//
// System extensions, such as the cloud memory itself, speak protocols of
// their own over extension frame kinds and follow the servers of their own
// group: they use package plugins/extension besides, and may attach
// themselves to the servers of the groups that connect to theirs
// (Info.Attach). A game plugin needs none of that.
//
// A plugin is a Go type registered in init:
//
//	func init() {
//		plugins.Register(plugins.Info{Name: "world", New: func() plugins.Plugin { return new(World) }})
//	}
//
// Registration stores a constructor, so two servers (or two groups) in one
// process never share plugin state. The exported fields of the value New
// returns are the plugin's settings: the runtime decodes the plugin's
// `settings:` node from the system file into it, strictly (an unknown key is a
// startup error naming its line), then calls Validate if the plugin has it.
//
// # Hooks and their concurrency contract
//
// Every hook is optional. A hook that returns an error or panics is recovered,
// logged and counted; it never takes the server down, except Start and
// Validate, whose failure stops the server's startup with that error.
//
//   - Validate and Start run once, in plugin order, before the server links to
//     anyone. Stop runs once during shutdown, after peers were told the server
//     is leaving and before links close, so Stop may still send.
//   - For one remote server, the events ServerJoined, ServerConnected,
//     ServerMessage, ServerDisconnected and ServerLeft are delivered one at a
//     time and in that order: Joined first; Connected before any Message of a
//     link; Disconnected after the last Message of that link; Left last. A
//     remote server may connect and disconnect several times between Joined and
//     Left. Events of different remote servers may run concurrently.
//   - ServerMessage runs on the link's read loop: while it runs, nothing more
//     is read from that remote server. Hooks should return quickly and hand
//     long work to goroutines the plugin owns (and ends in Stop).
//   - Hooks may call Send on any RemoteServer; Send never blocks.
package plugins

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Plugin is a plugin value: any type, usually a pointer to a struct whose
// exported fields are its settings. Hooks are found by type assertion on it.
type Plugin any

// Info registers a plugin type.
type Info struct {
	// Name is how the system file refers to the plugin. Required, unique.
	Name string
	// New returns a fresh, zero-configured plugin value. Required.
	New func() Plugin
	// Attach, when set, makes the plugin reach beyond its own group: every
	// server whose group connects to a group running it also hosts the
	// plugin value Attach returns, first among its plugins (see
	// Attachment). Nil: the plugin runs only where the system file lists
	// it. Like New, it is called once per server and returns a fresh
	// value; it decodes a.Spec's settings itself (Spec.Decode), and the
	// runtime then calls the value's Validate, if any. An error stops the
	// server from being created.
	Attach func(a Attachment) (Plugin, error)
}

var registry = struct {
	sync.RWMutex
	m map[string]Info
}{m: make(map[string]Info)}

// Register makes a plugin type available by name. It is meant to be called
// from init and panics on a programmer error: an empty name, a nil New, or a
// name registered twice.
func Register(info Info) {
	if info.Name == "" {
		panic("plugins: Register with an empty name")
	}
	if info.New == nil {
		panic(fmt.Sprintf("plugins: Register %q with a nil New", info.Name))
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[info.Name]; dup {
		panic(fmt.Sprintf("plugins: plugin %q registered twice", info.Name))
	}
	registry.m[info.Name] = info
}

// Lookup returns the registered plugin type called name.
func Lookup(name string) (Info, bool) {
	registry.RLock()
	defer registry.RUnlock()
	info, ok := registry.m[name]
	return info, ok
}

// Names returns the names of every registered plugin, sorted.
func Names() []string {
	registry.RLock()
	defer registry.RUnlock()
	names := make([]string, 0, len(registry.m))
	for n := range registry.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Validator checks a plugin's decoded settings before it starts. An error
// stops startup and is reported with the plugin's line in the system file.
type Validator interface {
	Validate() error
}

// Starter is called once before the server links to anyone. The Host stays
// valid until the server has stopped. ctx is the startup context; the
// plugin must not keep it: goroutines the plugin starts end in Stop.
type Starter interface {
	Start(ctx context.Context, host Host) error
}

// Stopper is called once during shutdown; ctx carries the drain deadline.
type Stopper interface {
	Stop(ctx context.Context) error
}

// ServerJoinedHandler learns of a remote server of a related group, from the
// registry or from its first link, whichever comes first.
type ServerJoinedHandler interface {
	ServerJoined(s RemoteServer) error
}

// ServerLeftHandler learns that a remote server is gone: the registry no
// longer lists it and it has no link. It is the last event for s.
type ServerLeftHandler interface {
	ServerLeft(s RemoteServer) error
}

// ServerConnectedHandler learns that a link to s is up.
type ServerConnectedHandler interface {
	ServerConnected(s RemoteServer) error
}

// ServerDisconnectedHandler learns that the link to s is down, and why.
// reason wraps a *CloseError when the link closed for a protocol reason.
type ServerDisconnectedHandler interface {
	ServerDisconnected(s RemoteServer, reason error) error
}

// ServerMessageHandler receives messages a remote server sent with Send.
// m.Payload is only valid until the hook returns: copy it to keep it.
type ServerMessageHandler interface {
	ServerMessage(s RemoteServer, m Message) error
}

// Message is a plugin message between servers.
type Message struct {
	// Tag is chosen by the sender's plugin; the runtime does not interpret it.
	Tag uint16
	// Payload is owned by the runtime and valid only during the hook call.
	Payload []byte
}
