// Package stats is the in-game statistics example of RakNet's cloud
// computing documentation (CloudServer and CloudClient):
// many game clients post their kills to the cloud memory; a plugin on the
// server side subscribes to the posts, aggregates them, writes the totals
// to an embedded SQLite database, and posts the running total back for the
// game clients to watch.
//
// A game client posts one row: its player name and its kill count for the
// session, which only grows (Player). Rows are spread over Shards keys by
// the uploader's ClientRef, so that no single cloud replica serializes
// every kill of the game. The "stats-aggregator" plugin (Aggregator), on
// a server of an internal group that connects to the cloud group, holds
// one subscription to every shard: each Updated notification adds the
// growth of that player's count, a Deleted one (the player left) its last
// growth. It writes the sums per player and overall to the database every
// FlushInterval, in one transaction, and posts the running total (the
// database's total plus what is not flushed yet) under TotalKey, which
// game clients watch with WatchTotal. The database is never exposed to
// players, and it sees one writer however many players there are.
//
// The "stats-guard" plugin (Guard), on the client servers, lets game
// clients post only well-formed kill rows, in their own shard: they cannot
// forge the total.
package stats

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"unicode/utf8"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol"
)

// ClientRef is the system-wide address of a game client.
type ClientRef = protocol.ClientRef

// Key is a cloud-memory key.
type Key = cloud.Key

// Keys of the statistics.
const (
	// KillsPrimary is the primary key of the players' kill rows; the
	// secondary key is the shard, 0 to Shards-1.
	KillsPrimary = "stats/kills"
	// Shards is how many keys the kill rows are spread over.
	Shards = 16
	// MaxNameBytes bounds a player's name.
	MaxNameBytes = 32
)

// TotalKey is where the aggregator posts the running total of kills.
var TotalKey = Key{Primary: "stats/total", Secondary: 0}

// ErrBadRow: a kill row that does not decode, or is in the wrong shard.
var ErrBadRow = errors.New("stats: bad kill row")

// ShardOf returns the shard of a game client's kill row.
func ShardOf(ref ClientRef) uint32 {
	h := fnv.New32a()
	h.Write([]byte(ref.Server))
	h.Write(binary.BigEndian.AppendUint64(nil, ref.ID))
	return h.Sum32() % Shards
}

// KillsKey returns the key of a shard of kill rows.
func KillsKey(shard uint32) Key { return Key{Primary: KillsPrimary, Secondary: shard} }

// killKeys returns every shard's key.
func killKeys() []Key {
	ks := make([]Key, Shards)
	for i := range ks {
		ks[i] = KillsKey(uint32(i))
	}
	return ks
}

// encodeKills encodes a kill row: u64 kills | player name.
func encodeKills(kills uint64, name string) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(name)), kills), name...)
}

// decodeKills decodes a kill row.
func decodeKills(b []byte) (kills uint64, name string, err error) {
	if len(b) < 9 {
		return 0, "", fmt.Errorf("%w: %d bytes", ErrBadRow, len(b))
	}
	name = string(b[8:])
	if err := checkName(name); err != nil {
		return 0, "", err
	}
	return binary.BigEndian.Uint64(b), name, nil
}

func checkName(name string) error {
	if name == "" || len(name) > MaxNameBytes || !utf8.ValidString(name) {
		return fmt.Errorf("%w: a player name is 1 to %d bytes of UTF-8", ErrBadRow, MaxNameBytes)
	}
	return nil
}

// encodeTotal and decodeTotal: the total's row is a u64.
func encodeTotal(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func decodeTotal(b []byte) (uint64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}
