package stats

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	// The pure-Go SQLite driver (no cgo, nothing to install): registers
	// the "sqlite" driver of database/sql.
	_ "modernc.org/sqlite"
)

// schema of the statistics database. totals.value of "kills" is always the
// sum of player_kills.kills: both change in one transaction.
const schema = `
CREATE TABLE IF NOT EXISTS player_kills (
	player     TEXT PRIMARY KEY,
	kills      INTEGER NOT NULL,
	updated_at INTEGER NOT NULL -- unix milliseconds
);
CREATE TABLE IF NOT EXISTS totals (
	stat  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
-- The game sessions still connected at the last flush and the kill count
-- of each that the tables above include, so that an aggregator that
-- restarts counts only what a session posted since.
CREATE TABLE IF NOT EXISTS sessions (
	uploader TEXT PRIMARY KEY, -- ClientRef: server#id
	shard    INTEGER NOT NULL,
	player   TEXT NOT NULL,
	kills    INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals (stat, value) VALUES ('kills', 0);
`

// Store is the statistics database: a SQLite file written by one
// aggregator. Methods are safe for concurrent use (database/sql
// serializes them on one connection).
type Store struct {
	db *sql.DB
}

// OpenStore opens (creating it if needed) the SQLite database at path, in
// WAL mode so readers (a dashboard, the test) never block the writer.
func OpenStore(ctx context.Context, path string) (*Store, error) {
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("stats: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("stats: schema of %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Total returns the total kills recorded.
func (s *Store) Total(ctx context.Context) (uint64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT value FROM totals WHERE stat = 'kills'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("stats: read total: %w", err)
	}
	return uint64(n), nil
}

// PlayerKills returns every player's recorded kills.
func (s *Store) PlayerKills(ctx context.Context) (map[string]uint64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT player, kills FROM player_kills`)
	if err != nil {
		return nil, fmt.Errorf("stats: read players: %w", err)
	}
	defer rows.Close()
	out := make(map[string]uint64)
	for rows.Next() {
		var p string
		var n int64
		if err := rows.Scan(&p, &n); err != nil {
			return nil, fmt.Errorf("stats: read players: %w", err)
		}
		out[p] = uint64(n)
	}
	return out, rows.Err()
}

// Session is a game session's row as the database counted it.
type Session struct {
	Uploader ClientRef
	Shard    uint32
	Player   string
	Kills    uint64
}

// Batch is what one flush writes.
type Batch struct {
	// Kills to add per player.
	Kills map[string]uint64
	// Sessions whose counted kills changed, and sessions that ended.
	Sessions []Session
	Ended    []ClientRef
}

// Flush writes a batch in one transaction: each player's count, the total
// and the sessions change together, or nothing does.
func (s *Store) Flush(ctx context.Context, b Batch) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("stats: begin: %w", err)
	}
	defer tx.Rollback()
	now := time.Now().UnixMilli()
	var sum uint64
	for p, n := range b.Kills {
		if _, err := tx.ExecContext(ctx, `INSERT INTO player_kills (player, kills, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (player) DO UPDATE SET kills = kills + excluded.kills, updated_at = excluded.updated_at`, p, int64(n), now); err != nil {
			return fmt.Errorf("stats: add kills of %q: %w", p, err)
		}
		sum += n
	}
	if _, err := tx.ExecContext(ctx, `UPDATE totals SET value = value + ? WHERE stat = 'kills'`, int64(sum)); err != nil {
		return fmt.Errorf("stats: add to total: %w", err)
	}
	for _, ss := range b.Sessions {
		if _, err := tx.ExecContext(ctx, `INSERT INTO sessions (uploader, shard, player, kills) VALUES (?, ?, ?, ?)
			ON CONFLICT (uploader) DO UPDATE SET shard = excluded.shard, player = excluded.player, kills = excluded.kills`,
			ss.Uploader.String(), int64(ss.Shard), ss.Player, int64(ss.Kills)); err != nil {
			return fmt.Errorf("stats: session %s: %w", ss.Uploader, err)
		}
	}
	for _, ref := range b.Ended {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE uploader = ?`, ref.String()); err != nil {
			return fmt.Errorf("stats: end session %s: %w", ref, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("stats: commit: %w", err)
	}
	return nil
}

// Sessions returns the sessions the database counted.
func (s *Store) Sessions(ctx context.Context) ([]Session, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT uploader, shard, player, kills FROM sessions`)
	if err != nil {
		return nil, fmt.Errorf("stats: read sessions: %w", err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		var up, player string
		var shard, kills int64
		if err := rows.Scan(&up, &shard, &player, &kills); err != nil {
			return nil, fmt.Errorf("stats: read sessions: %w", err)
		}
		ref, err := parseRef(up)
		if err != nil {
			return nil, err
		}
		out = append(out, Session{Uploader: ref, Shard: uint32(shard), Player: player, Kills: uint64(kills)})
	}
	return out, rows.Err()
}

// parseRef parses ClientRef.String's "server#id".
func parseRef(s string) (ClientRef, error) {
	i := strings.LastIndexByte(s, '#')
	if i < 0 {
		return ClientRef{}, fmt.Errorf("stats: bad uploader %q in the database", s)
	}
	id, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil {
		return ClientRef{}, fmt.Errorf("stats: bad uploader %q in the database", s)
	}
	return ClientRef{Server: s[:i], ID: id}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }
