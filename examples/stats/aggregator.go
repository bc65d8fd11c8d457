package stats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/examples/internal/cloudloop"
	"github.com/cloudrift/cloudrift/plugins"
)

// AggregatorPlugin is the name the aggregator is registered under.
const AggregatorPlugin = "stats-aggregator"

func init() {
	plugins.Register(plugins.Info{Name: AggregatorPlugin, New: func() plugins.Plugin { return new(Aggregator) }})
}

// Defaults of the aggregator's zero settings.
const (
	DefaultFlushInterval   = time.Second
	DefaultPublishInterval = 100 * time.Millisecond
)

// maxPages bounds the Gets of one truncated snapshot.
const maxPages = 10000

// Aggregator is the "stats-aggregator" plugin: the local client of RakNet's
// cloud computing documentation that mirrors the players' kills into a database. Run it on one
// server of an internal group that connects to the cloud-memory group (one
// server: two would both count every kill).
//
// It subscribes to every shard of kill rows. For each game session
// (uploader) it remembers the last count it counted; an Updated or Deleted
// notification adds the growth to the player's kills, a Resync adds the
// growth of every row it carries and ends the sessions it no longer lists.
// Counts only grow, so a notification older than what was counted adds
// nothing: the count is exact across resyncs and retried subscriptions.
// What a session posted after the last notification the aggregator got and
// before it vanished without one (a resync that no longer lists it) is the
// only thing it can miss.
//
// Every FlushInterval it writes the kills per player, the total and the
// sessions' counted kills to the SQLite database at Database, in one
// transaction; at start it reads them back, so a restarted aggregator
// counts only what the still-connected sessions posted since. Every
// PublishInterval, when the total changed, it posts the running total
// (the database's, plus what is not flushed yet) under TotalKey as this
// server's own row. Stop flushes what is left.
type Aggregator struct {
	// Database is the path of the SQLite file, created if missing.
	// Required.
	Database string `yaml:"database"`
	// FlushInterval is how often kills are written to the database. Zero
	// means 1s.
	FlushInterval config.Duration `yaml:"flushInterval"`
	// PublishInterval is the least time between two posts of the running
	// total. Zero means 100ms.
	PublishInterval config.Duration `yaml:"publishInterval"`

	log   *zerolog.Logger
	cm    plugins.CloudMemory
	store *Store
	loop  cloudloop.Loop

	// Owned by the loop goroutine.
	seen      map[ClientRef]*session
	pending   map[string]uint64 // kills per player not flushed yet
	dirty     map[ClientRef]struct{}
	ended     map[ClientRef]struct{}
	flushed   uint64 // the database's total
	unflushed uint64
	published uint64
	posted    bool // published holds a total the cloud confirmed
	lastPost  time.Time
}

// session is a game session's kill row as the aggregator counted it.
type session struct {
	shard  uint32
	player string
	kills  uint64
}

var (
	_ plugins.Validator                = (*Aggregator)(nil)
	_ plugins.Starter                  = (*Aggregator)(nil)
	_ plugins.Stopper                  = (*Aggregator)(nil)
	_ plugins.CloudNotificationHandler = (*Aggregator)(nil)
)

// Validate implements plugins.Validator.
func (a *Aggregator) Validate() error {
	if a.Database == "" {
		return errors.New("database: the path of the SQLite file is required")
	}
	if a.FlushInterval < 0 || a.PublishInterval < 0 {
		return errors.New("flushInterval and publishInterval must not be negative")
	}
	return nil
}

// Start implements plugins.Starter: it opens the database and starts the
// loop that subscribes, counts, flushes and publishes.
func (a *Aggregator) Start(ctx context.Context, h plugins.Host) error {
	cm, err := h.CloudMemory()
	if err != nil {
		return fmt.Errorf("stats aggregator: %w", err)
	}
	store, err := OpenStore(ctx, a.Database)
	if err != nil {
		return err
	}
	total, err := store.Total(ctx)
	if err == nil {
		err = a.loadSessions(ctx, store)
	}
	if err != nil {
		store.Close()
		return err
	}
	if a.FlushInterval == 0 {
		a.FlushInterval = config.Duration(DefaultFlushInterval)
	}
	if a.PublishInterval == 0 {
		a.PublishInterval = config.Duration(DefaultPublishInterval)
	}
	a.log, a.cm, a.store, a.flushed = h.Logger(), cm, store, total
	a.pending = make(map[string]uint64)
	a.dirty = make(map[ClientRef]struct{})
	a.ended = make(map[ClientRef]struct{})
	a.log.Info().Str("database", a.Database).Uint64("total", total).Int("sessions", len(a.seen)).Msg("stats database open")
	a.loop.Start(a.run)
	return nil
}

func (a *Aggregator) loadSessions(ctx context.Context, store *Store) error {
	ss, err := store.Sessions(ctx)
	if err != nil {
		return err
	}
	a.seen = make(map[ClientRef]*session, len(ss))
	for _, s := range ss {
		a.seen[s.Uploader] = &session{shard: s.Shard, player: s.Player, kills: s.Kills}
	}
	return nil
}

// Stop implements plugins.Stopper: the loop flushes what is left and the
// database is closed. Stop waits for that even past ctx (a close gives an
// expired one): stopping cancels the loop's cloud operations at once, and
// the final flush is a local write bounded by cloudloop.OpWait.
func (a *Aggregator) Stop(context.Context) error {
	a.loop.Stop()
	return nil
}

// CloudNotification implements plugins.CloudNotificationHandler: it queues
// the notification for the loop.
func (a *Aggregator) CloudNotification(n cloud.Notification) error {
	a.loop.Push(n)
	return nil
}

func (a *Aggregator) run() {
	defer func() {
		a.flush()
		if err := a.store.Close(); err != nil {
			a.log.Error().Err(err).Msg("closing the stats database")
		}
	}()
	if !a.subscribe() {
		return
	}
	flush := time.NewTicker(a.FlushInterval.Duration())
	defer flush.Stop()
	publish := time.NewTicker(a.PublishInterval.Duration())
	defer publish.Stop()
	a.publish()
	for {
		select {
		case <-a.loop.Stopped():
			a.drain()
			return
		case <-a.loop.Wake():
			a.drain()
		case <-publish.C:
			a.publish()
		case <-flush.C:
			a.flush()
		}
	}
}

// subscribe subscribes to every shard, retrying until it works (the cloud
// replicas may not be linked yet) or Stop; then it counts the snapshot and
// the notifications that arrived meanwhile. It returns false on Stop.
func (a *Aggregator) subscribe() bool {
	keys := killKeys()
	res, ok := a.loop.Subscribe(a.cm, keys, a.log, "subscribing to the kill rows", a.resync)
	if !ok {
		return false
	}
	if res.Truncated {
		a.readRest(keys, uint32(len(res.Rows)))
	}
	a.drain()
	a.log.Info().Int("sessions", len(a.seen)).Bool("partial", res.Partial).Msg("subscribed to the kill rows")
	return true
}

// readRest reads the rows a truncated snapshot left out, from offset on,
// with plain Gets. They are at least as new as the snapshot, and counts
// only grow, so counting them is safe.
func (a *Aggregator) readRest(keys []Key, offset uint32) {
	for range maxPages {
		ctx, cancel := a.loop.Op()
		res, err := a.cm.Get(ctx, cloud.Query{Keys: keys, Offset: offset})
		cancel()
		if err != nil {
			a.log.Warn().Err(err).Msg("reading the rest of a truncated snapshot")
			return
		}
		for _, r := range res.Rows {
			a.count(r, false)
		}
		offset += uint32(len(res.Rows))
		if !res.Truncated || len(res.Rows) == 0 || int(offset) >= res.Total {
			return
		}
	}
}

// drain counts the queued notifications, in order.
func (a *Aggregator) drain() {
	for _, n := range a.loop.Take() {
		switch n.Type {
		case cloud.NotifyUpdated:
			a.count(n.Row, false)
		case cloud.NotifyDeleted:
			a.count(n.Row, true)
		case cloud.NotifyResync:
			a.resync(n.Key, n.Rows, n.Truncated)
			if n.Truncated {
				a.readRest([]Key{n.Key}, uint32(len(n.Rows)))
			}
		}
	}
}

// count adds the growth of one kill row; ended forgets its session after.
func (a *Aggregator) count(r cloud.Row, ended bool) {
	kills, player, err := decodeKills(r.Data)
	if err != nil || r.Key.Primary != KillsPrimary {
		a.log.Warn().Err(err).Str("uploader", r.Uploader.String()).Msg("ignoring a malformed kill row")
		return
	}
	s := a.seen[r.Uploader]
	if s == nil {
		s = &session{}
		a.seen[r.Uploader] = s
	}
	s.shard, s.player = r.Key.Secondary, player
	if kills > s.kills {
		d := kills - s.kills
		a.pending[player] += d
		a.unflushed += d
		s.kills = kills
		a.dirty[r.Uploader] = struct{}{}
	}
	if ended {
		a.end(r.Uploader)
	}
}

func (a *Aggregator) end(up ClientRef) {
	delete(a.seen, up)
	delete(a.dirty, up)
	a.ended[up] = struct{}{}
}

// resync counts the rows of a snapshot of key and, unless it was cut short,
// ends the sessions of that key it does not list.
func (a *Aggregator) resync(k Key, rows []cloud.Row, truncated bool) {
	listed := make(map[ClientRef]bool, len(rows))
	for _, r := range rows {
		if r.Key == k {
			listed[r.Uploader] = true
			a.count(r, false)
		}
	}
	if truncated || k.Primary != KillsPrimary {
		return
	}
	for up, s := range a.seen {
		if s.shard == k.Secondary && !listed[up] {
			a.end(up)
		}
	}
}

// flush writes what was counted since the last flush.
func (a *Aggregator) flush() {
	if len(a.pending) == 0 && len(a.dirty) == 0 && len(a.ended) == 0 {
		return
	}
	b := Batch{Kills: a.pending}
	for up := range a.dirty {
		s := a.seen[up]
		b.Sessions = append(b.Sessions, Session{Uploader: up, Shard: s.shard, Player: s.player, Kills: s.kills})
	}
	for up := range a.ended {
		b.Ended = append(b.Ended, up)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cloudloop.OpWait)
	defer cancel()
	if err := a.store.Flush(ctx, b); err != nil {
		a.log.Error().Err(err).Msg("flushing kills to the database; will retry")
		return
	}
	a.flushed += a.unflushed
	a.unflushed = 0
	a.pending = make(map[string]uint64)
	clear(a.dirty)
	clear(a.ended)
}

// publish posts the running total when it changed, at most once per
// PublishInterval.
func (a *Aggregator) publish() {
	total := a.flushed + a.unflushed
	if a.posted && total == a.published {
		return
	}
	if time.Since(a.lastPost) < a.PublishInterval.Duration() {
		return
	}
	a.lastPost = time.Now()
	ctx, cancel := a.loop.Op()
	defer cancel()
	if err := a.cm.Post(ctx, TotalKey, encodeTotal(total)); err != nil {
		a.log.Warn().Err(err).Msg("posting the running total")
		return
	}
	a.published, a.posted = total, true
}
