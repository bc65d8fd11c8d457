package stats

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/cloudrift/cloudrift/plugins"
)

// GuardPlugin is the name the guard is registered under.
const GuardPlugin = "stats-guard"

func init() {
	plugins.Register(plugins.Info{Name: GuardPlugin, New: func() plugins.Plugin { return new(Guard) }})
}

// ErrForbidden: a game client posted or released under a statistics key
// other than its own kill row.
var ErrForbidden = errors.New("stats: game clients may only post their own kill row")

// Guard is the "stats-guard" plugin, run by the client servers. It lets
// their game clients Post under the statistics keys only a well-formed kill
// row in their own shard, whose count never goes down, and Release only
// that; the total and the other shards are the servers' (reading is open
// to everyone). Keys outside "stats/" are not its business. Operations of
// servers are not checked.
type Guard struct {
	// MaxKillsPerPost bounds how much one post may raise a session's
	// count. Zero means 1000.
	MaxKillsPerPost uint64 `yaml:"maxKillsPerPost"`

	mu   sync.Mutex
	last map[uint64]uint64 // client ID → count last accepted
}

var (
	_ plugins.CloudFilter               = (*Guard)(nil)
	_ plugins.ClientDisconnectedHandler = (*Guard)(nil)
)

// FilterCloud implements plugins.CloudFilter.
func (g *Guard) FilterCloud(op *plugins.CloudOp) error {
	if op.Uploader.ID == 0 || (op.Kind != plugins.CloudOpPost && op.Kind != plugins.CloudOpRelease) {
		return nil
	}
	own := KillsKey(ShardOf(op.Uploader))
	for _, k := range op.Keys {
		if strings.HasPrefix(k.Primary, "stats/") && k != own {
			return fmt.Errorf("%w: %s", ErrForbidden, k)
		}
	}
	if op.Kind != plugins.CloudOpPost || op.Keys[0] != own {
		return nil
	}
	kills, _, err := decodeKills(op.Data)
	if err != nil {
		return err
	}
	limit := g.MaxKillsPerPost
	if limit == 0 {
		limit = 1000
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	last := g.last[op.Uploader.ID]
	if kills < last || kills-last > limit {
		return fmt.Errorf("%w: count %d after %d (at most %d more per post)", ErrBadRow, kills, last, limit)
	}
	if g.last == nil {
		g.last = make(map[uint64]uint64)
	}
	g.last[op.Uploader.ID] = kills
	return nil
}

// ClientDisconnected implements plugins.ClientDisconnectedHandler.
func (g *Guard) ClientDisconnected(c plugins.Client, _ error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.last, c.Ref().ID)
	return nil
}
