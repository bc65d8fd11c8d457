package stats

import (
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/examples/internal/demotest"
	"github.com/cloudrift/cloudrift/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// system runs the example's cluster.yaml in-process: cloud-1 to cloud-3,
// stats-1, client-1 and client-2, over loopback, with the database in a
// temporary directory.
type system struct {
	*demotest.System
	db string
}

func newSystem(t *testing.T) *system {
	t.Helper()
	db := filepath.Join(t.TempDir(), "stats.db")
	t.Setenv("STATS_DB", db)
	s := &system{System: demotest.Load(t, "cluster.yaml"), db: db}
	s.StartGroup("cloud")
	s.StartServer("stats", "stats-1")
	s.StartGroup("client")
	s.WaitLinked("stats")
	s.WaitLinked("client")
	return s
}

func totalIs(tot *Total, want uint64) func() bool {
	return func() bool {
		n, ok := tot.Kills()
		return ok && n == want
	}
}

// dbState reads the database as a dashboard would, with its own
// connection: the total, each player's kills, the sum of those, and the
// sessions it counted.
func dbState(t *testing.T, path string) (total uint64, players map[string]uint64, sum uint64, sessions map[ClientRef]uint64) {
	t.Helper()
	ctx := testutil.Context(t)
	st, err := OpenStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if total, err = st.Total(ctx); err != nil {
		t.Fatal(err)
	}
	if players, err = st.PlayerKills(ctx); err != nil {
		t.Fatal(err)
	}
	var n sql.NullInt64
	if err := st.db.QueryRowContext(ctx, `SELECT SUM(kills) FROM player_kills`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	ss, err := st.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sessions = make(map[ClientRef]uint64)
	for _, s := range ss {
		sessions[s.Uploader] = s.Kills
	}
	return total, players, uint64(n.Int64), sessions
}

type player struct {
	c *client.Client
	p *Player
}

func TestStats(t *testing.T) {
	s := newSystem(t)
	ctx := testutil.Context(t)

	watcher := s.Server("client-1").Dial()
	tot, err := WatchTotal(ctx, watcher)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the first total, 0", totalIs(tot, 0))

	// 20 players on two client servers post kills concurrently; the
	// first five leave halfway.
	const players, rounds = 20, 10
	ps := make([]player, players)
	want := make(map[string]uint64)
	for i := range ps {
		c := s.Server(fmt.Sprintf("client-%d", 1+i%2)).Dial()
		p, err := NewPlayer(c, fmt.Sprintf("p%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		ps[i] = player{c, p}
	}
	var wg sync.WaitGroup
	errs := make(chan error, players)
	for i, pl := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				if i < 5 && r == rounds/2 {
					pl.c.Close()
					return
				}
				if err := pl.p.AddKills(ctx, uint64(1+(i+r)%3)); err != nil {
					errs <- fmt.Errorf("p%02d round %d: %w", i, r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var total uint64
	for i, pl := range ps {
		want[fmt.Sprintf("p%02d", i)] = pl.p.Kills()
		total += pl.p.Kills()
	}
	testutil.WaitFor(t, fmt.Sprintf("the running total, %d", total), totalIs(tot, total))

	// The guard: a player cannot post the total, another shard, or a
	// count that goes down; nothing changes.
	c, p := ps[10].c, ps[10].p
	if err := c.Post(ctx, TotalKey, encodeTotal(1_000_000)); !errors.Is(err, cloud.ErrRejected) {
		t.Fatalf("a player posting the total: %v", err)
	}
	other := KillsKey((ShardOf(c.Ref()) + 1) % Shards)
	if err := c.Post(ctx, other, encodeKills(1, "x")); !errors.Is(err, cloud.ErrRejected) {
		t.Fatalf("a player posting in another shard: %v", err)
	}
	if err := c.Post(ctx, KillsKey(ShardOf(c.Ref())), encodeKills(p.Kills()-1, "p10")); !errors.Is(err, cloud.ErrRejected) {
		t.Fatalf("a count going down: %v", err)
	}
	if err := c.Post(ctx, KillsKey(ShardOf(c.Ref())), encodeKills(p.Kills()+5000, "p10")); !errors.Is(err, cloud.ErrRejected) {
		t.Fatalf("a count jumping: %v", err)
	}

	// A graceful stop flushes: the database holds every kill.
	s.Server("stats-1").Shutdown()
	dbTotal, dbPlayers, dbSum, dbSessions := dbState(t, s.db)
	if dbTotal != total || dbSum != total || !maps.Equal(dbPlayers, want) {
		t.Fatalf("database: total %d, sum %d, players %v\nwant total %d, players %v", dbTotal, dbSum, dbPlayers, total, want)
	}
	wantSessions := make(map[ClientRef]uint64)
	for _, pl := range ps[5:] {
		wantSessions[pl.c.Ref()] = pl.p.Kills()
	}
	if !maps.Equal(dbSessions, wantSessions) {
		t.Fatalf("database sessions %v, want %v", dbSessions, wantSessions)
	}

	// While no aggregator runs, p06 scores 3 more and p07 leaves.
	if err := ps[6].p.AddKills(ctx, 3); err != nil {
		t.Fatal(err)
	}
	want["p06"] += 3
	total += 3
	ps[7].c.Close()
	delete(wantSessions, ps[7].c.Ref())
	wantSessions[ps[6].c.Ref()] += 3
	testutil.WaitFor(t, "p07's row gone", func() bool {
		res, err := watcher.Get(ctx, cloud.Query{Keys: []Key{KillsKey(ShardOf(ps[7].c.Ref()))}, Uploaders: []ClientRef{ps[7].c.Ref()}})
		return err == nil && res.Total == 0
	})

	// A new aggregator on the same database starts from its total, counts
	// what the connected sessions posted since (and nothing twice), and
	// carries on.
	s.StartServer("stats", "stats-2")
	s.WaitLinkedServer("stats-2")
	testutil.WaitFor(t, fmt.Sprintf("the total after the restart, %d", total), totalIs(tot, total))
	for _, pl := range ps[15:] {
		if err := pl.p.AddKills(ctx, 2); err != nil {
			t.Fatal(err)
		}
		want[pl.p.name] += 2
		wantSessions[pl.c.Ref()] += 2
		total += 2
	}
	testutil.WaitFor(t, fmt.Sprintf("the total after more kills, %d", total), totalIs(tot, total))
	s.Server("stats-2").Shutdown()
	dbTotal, dbPlayers, dbSum, dbSessions = dbState(t, s.db)
	if dbTotal != total || dbSum != total || !maps.Equal(dbPlayers, want) {
		t.Fatalf("database after the restart: total %d, sum %d, players %v\nwant total %d, players %v", dbTotal, dbSum, dbPlayers, total, want)
	}
	if !maps.Equal(dbSessions, wantSessions) {
		t.Fatalf("database sessions after the restart %v, want %v", dbSessions, wantSessions)
	}
}

func TestKillRows(t *testing.T) {
	b := encodeKills(42, "ann")
	if n, name, err := decodeKills(b); err != nil || n != 42 || name != "ann" {
		t.Fatalf("decode = %d %q %v", n, name, err)
	}
	for _, bad := range [][]byte{nil, make([]byte, 8), append(make([]byte, 8), 0xff), encodeKills(1, string(make([]byte, MaxNameBytes+1)))} {
		if _, _, err := decodeKills(bad); !errors.Is(err, ErrBadRow) {
			t.Errorf("decode %x: %v", bad, err)
		}
	}
	seen := make(map[uint32]bool)
	for id := range uint64(200) {
		sh := ShardOf(ClientRef{Server: "client-1", ID: id})
		if sh >= Shards {
			t.Fatalf("shard %d", sh)
		}
		seen[sh] = true
	}
	if len(seen) != Shards {
		t.Fatalf("200 clients fell in %d shards of %d", len(seen), Shards)
	}
}
