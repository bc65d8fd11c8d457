package directory

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"

	"github.com/cloudrift/cloudrift/plugins"
)

// GuardPlugin is the name the guard is registered under.
const GuardPlugin = "directory-guard"

// TokenHeader is the upgrade-request header in which a game server
// presents the host token (Guard.HostToken).
const TokenHeader = "X-Directory-Token"

func init() {
	plugins.Register(plugins.Info{Name: GuardPlugin, New: func() plugins.Plugin { return new(Guard) }})
}

// Errors of the guard, which the refused clients see as text.
var (
	// ErrBadToken: a client presented a host token that is not the
	// guard's; it is refused at connect.
	ErrBadToken = errors.New("directory: bad host token")
	// ErrNotHost: a client that did not present the host token tried to
	// post or release under the application key.
	ErrNotHost = errors.New("directory: only game servers may list themselves")
)

// Guard is the "directory-guard" plugin, run by the client servers (the
// external group) of a directory system. It authorizes the cloud-memory
// operations of their game clients under the application key: with a
// HostToken, only clients that presented it at connect (in TokenHeader)
// may Post or Release there, and a client presenting a wrong token is
// refused; every Post must be a known field within its limits. Reading
// (Get, subscriptions) is open to every client, and other keys are not
// the guard's business. Operations of servers themselves are not checked.
type Guard struct {
	// App is the application key: the primary key of the directory's
	// rows. Required.
	App string `yaml:"app"`
	// HostToken, when set, is the secret game servers present to be
	// listed. Empty: any client may list itself.
	HostToken string `yaml:"hostToken"`

	mu    sync.Mutex
	hosts map[uint64]struct{} // IDs of this server's clients that presented the token
}

var (
	_ plugins.Validator                 = (*Guard)(nil)
	_ plugins.ClientAuthenticator       = (*Guard)(nil)
	_ plugins.ClientDisconnectedHandler = (*Guard)(nil)
	_ plugins.CloudFilter               = (*Guard)(nil)
)

// Validate implements plugins.Validator.
func (g *Guard) Validate() error {
	if g.App == "" {
		return errors.New("app: the application key is required")
	}
	if len(g.App) > 255 {
		return fmt.Errorf("app: %d bytes, at most 255", len(g.App))
	}
	return nil
}

// Authenticate implements plugins.ClientAuthenticator: a client presenting
// the host token is a game server; one presenting another token is refused.
func (g *Guard) Authenticate(info plugins.ClientInfo) error {
	token := info.Header.Get(TokenHeader)
	if token == "" {
		return nil
	}
	if g.HostToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(g.HostToken)) != 1 {
		return ErrBadToken
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hosts == nil {
		g.hosts = make(map[uint64]struct{})
	}
	g.hosts[info.Ref.ID] = struct{}{}
	return nil
}

// ClientDisconnected implements plugins.ClientDisconnectedHandler.
func (g *Guard) ClientDisconnected(c plugins.Client, _ error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.hosts, c.Ref().ID)
	return nil
}

// FilterCloud implements plugins.CloudFilter.
func (g *Guard) FilterCloud(op *plugins.CloudOp) error {
	if op.Uploader.ID == 0 || (op.Kind != plugins.CloudOpPost && op.Kind != plugins.CloudOpRelease) {
		return nil
	}
	mine := false
	for _, k := range op.Keys {
		mine = mine || k.Primary == g.App
	}
	if !mine {
		return nil
	}
	if g.HostToken != "" {
		g.mu.Lock()
		_, host := g.hosts[op.Uploader.ID]
		g.mu.Unlock()
		if !host {
			return ErrNotHost
		}
	}
	if op.Kind == plugins.CloudOpPost {
		return checkField(op.Keys[0].Secondary, op.Data)
	}
	return nil
}
