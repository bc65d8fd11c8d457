// Package cloud is the cloud-memory API shared by the game-client SDK
// (package client) and the server plugins (package plugins): keys, rows,
// queries, results, notifications, and the errors of a refused operation.
// The cloud memory is a group of replicas that hold rows posted by game
// clients and servers; each key is owned by one replica. Package
// protocol/cloudwire encodes these types on the wire.
package cloud

import (
	"fmt"
	"unicode/utf8"

	"github.com/cloudrift/cloudrift/protocol"
)

// Size limits of the cloud memory's API.
const (
	// MaxPrimary is the longest primary key, in bytes.
	MaxPrimary = 255
	// MaxKeys is the most keys (or uploaders) one operation lists.
	MaxKeys = 1<<16 - 1
)

// Key identifies what a row is about; many uploaders may hold a row under
// one key.
type Key struct {
	Primary   string // valid UTF-8, at most MaxPrimary bytes
	Secondary uint32
}

// String formats the key as "primary/secondary".
func (k Key) String() string { return fmt.Sprintf("%s/%d", k.Primary, k.Secondary) }

// Validate reports whether k can be encoded: a valid UTF-8 primary of at
// most MaxPrimary bytes.
func (k Key) Validate() error {
	if len(k.Primary) > MaxPrimary {
		return fmt.Errorf("key primary of %d bytes, limit %d", len(k.Primary), MaxPrimary)
	}
	if !utf8.ValidString(k.Primary) {
		return fmt.Errorf("key primary %q is not valid UTF-8", k.Primary)
	}
	return nil
}

// Row is one row: the data one uploader holds under one key.
type Row struct {
	Key      Key
	Uploader protocol.ClientRef // the client (or server, ID 0) that posted it
	Addr     string             // the uploader's remote address ("" for a server)
	Via      string             // the server the row came through
	Data     []byte
}

// Query asks for rows.
type Query struct {
	// Keys to read, in the order results come back. Required.
	Keys []Key
	// Uploaders, when not empty, limits the rows (and, with Subscribe, the
	// notifications) to these uploaders.
	Uploaders []protocol.ClientRef
	// Offset skips that many rows of the ordered result; Limit caps how
	// many come back (0: no cap).
	Offset, Limit uint32
	// Subscribe also subscribes to the keys, atomically with the
	// snapshot: notifications follow for every change after it.
	Subscribe bool
}

// Result is what a Get returns.
type Result struct {
	// Rows in query key order, then uploader order (protocol.CompareRefs:
	// server ID, then client ID), after Offset and within Limit.
	Rows []Row
	// Total counts every matching row of the keys that answered.
	Total int
	// Truncated: the download byte limit cut Rows short (at least one row
	// is returned when any matched).
	Truncated bool
	// Partial: the keys in Missing could not be read within the Get
	// timeout (their owner did not answer, was not linked, or had just
	// taken them over and did not hold all their rows yet); with
	// Subscribe, their rows arrive later in a Resync. Without it, Rows and
	// Total hold every matching row of every key.
	Partial bool
	Missing []Key
}

// NotificationType says what a Notification is about. Its Updated and
// Deleted values equal the wire notice types (cloudwire.NoticeType) they
// come from.
type NotificationType uint8

// Notification types.
const (
	// NotifyUpdated: Row was created (Created) or overwritten.
	NotifyUpdated NotificationType = 1
	// NotifyDeleted: Row was deleted (released, or its uploader
	// disconnected, or the uploader's server is gone); Row holds its last
	// value.
	NotifyDeleted NotificationType = 2
	// NotifyResync: Rows replace everything known about Key (those rows
	// matching the subscription's uploader filter). Sent when the
	// subscription moved to another replica, when a partial Get's late
	// keys arrive, or when notifications had to be dropped.
	NotifyResync NotificationType = 3
)

func (t NotificationType) String() string {
	switch t {
	case NotifyUpdated:
		return "updated"
	case NotifyDeleted:
		return "deleted"
	case NotifyResync:
		return "resync"
	}
	return fmt.Sprintf("notification(%d)", uint8(t))
}

// Notification is one change to a subscribed key.
type Notification struct {
	Type    NotificationType
	Key     Key
	Row     Row   // NotifyUpdated and NotifyDeleted
	Created bool  // NotifyUpdated: the row did not exist before
	Rows    []Row // NotifyResync
	// Truncated (NotifyResync): the download byte limit cut Rows short.
	Truncated bool
}
