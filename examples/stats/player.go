package stats

import (
	"context"
	"fmt"
	"sync"

	"github.com/cloudrift/cloudrift/client"
)

// Player posts one game client's kills: a row holding the player's name
// and its kill count for this session, in the client's shard. The row
// lives while the client is connected; the aggregator has counted every
// kill it saw posted by then, and the Deleted notification carries the
// last count.
type Player struct {
	c    *client.Client
	name string
	key  Key

	mu    sync.Mutex
	kills uint64
}

// NewPlayer returns the kill poster of a connected game client.
func NewPlayer(c *client.Client, name string) (*Player, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	return &Player{c: c, name: name, key: KillsKey(ShardOf(c.Ref()))}, nil
}

// AddKills adds n kills and posts the new count. Calls are serialized, so
// the counts posted only grow. The kills count even when the post fails:
// the next post carries them.
func (p *Player) AddKills(ctx context.Context, n uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.kills += n
	if err := p.c.Post(ctx, p.key, encodeKills(p.kills, p.name)); err != nil {
		return fmt.Errorf("stats: post kills: %w", err)
	}
	return nil
}

// Kills returns the player's kills so far.
func (p *Player) Kills() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.kills
}

// Total is a live view of the running total of kills.
type Total struct {
	v *client.View
}

// WatchTotal subscribes c to the running total.
func WatchTotal(ctx context.Context, c *client.Client) (*Total, error) {
	v, err := c.View(ctx, []Key{TotalKey})
	if err != nil {
		return nil, fmt.Errorf("stats: watch total: %w", err)
	}
	return &Total{v: v}, nil
}

// Kills returns the running total, and false until an aggregator has
// posted one. Only servers' rows count (the guard keeps game clients from
// posting there anyway); with several, the largest wins.
func (t *Total) Kills() (uint64, bool) {
	var best uint64
	found := false
	for _, r := range t.v.Rows() {
		if r.Uploader.ID != 0 {
			continue
		}
		if n, ok := decodeTotal(r.Data); ok && (!found || n > best) {
			best, found = n, true
		}
	}
	return best, found
}

// Changed receives a value after changes; see client.View.
func (t *Total) Changed() <-chan struct{} { return t.v.Changed() }

// Close ends the subscription.
func (t *Total) Close(ctx context.Context) error { return t.v.Close(ctx) }
