package plugins

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloudrift/cloudrift/cloud"
)

// The cloud memory as plugins see it. A group whose servers run the cloud
// memory (plugins/cloudmemory, which a binary imports for its side
// effect) is a cloud-memory group; every server whose group connects to
// one gets the cloud memory's caller side attached (see Attachment), and
// its plugins reach it with Host.CloudMemory. Rows posted through it
// belong to the server itself (uploader ClientRef{Server: its ID, ID: 0})
// and live as long as the server does. An external server also forwards
// its game clients' operations (the client SDK's), with their identity,
// enforcing their limits and running the CloudFilter hooks.

// ErrNoCloudMemory: Host.CloudMemory on a server whose group connects to
// no cloud-memory group. The errors of the operations themselves are
// package cloud's (*cloud.Error, matching cloud.ErrBadRequest, ...).
var ErrNoCloudMemory = errors.New("cloudrift: no cloud memory for this group")

// CloudMemory is the cloud-memory API of one plugin. Its uploader identity
// is its server's (every plugin of a server shares the server's rows);
// its subscriptions are its own, and their notifications go to the
// plugin's CloudNotification hook. Methods are safe for concurrent use and
// return when the key's owner replica confirmed, when ctx ends, or after
// the cloud memory's operation timeout.
type CloudMemory interface {
	// Ref is the uploader identity of this server's rows.
	Ref() ClientRef
	// Post creates or overwrites this server's row under key; data is
	// copied. Subscribers get Updated.
	//
	// A nil error means the key's owner replica stored the row (in
	// memory; no other replica holds a copy): a Get that reaches that
	// owner afterwards sees this value or a later one (until the row is
	// released). This server's
	// Posts to one key are applied in the order they were made; a nil
	// error for one also answers earlier ones of the same key still
	// waiting, whose values it replaced. If the owner is lost or the key
	// moves to another replica, this server posts the row again to the
	// new owner; until then a Get may miss it. The row is deleted when
	// this server stops.
	//
	// An error that matches cloud.ErrTimeout, or ctx's error, leaves the
	// row with this server, which keeps placing it: it may still appear.
	// Every other error (cloud.ErrBadRequest, ErrRowTooLarge,
	// ErrRejected, ErrUnavailable, ...) means this Post changed nothing;
	// the row keeps its last stored value. Before the first cloud replica
	// links, Post waits for it; once every replica that linked is gone,
	// it fails at once with cloud.ErrUnavailable. See docs/ARCHITECTURE.md,
	// "What a Post's acknowledgement promises".
	Post(ctx context.Context, key cloud.Key, data []byte) error
	// Release deletes this server's rows under keys; subscribers get
	// Deleted with the last value.
	Release(ctx context.Context, keys ...cloud.Key) error
	// Get reads rows; with q.Subscribe it also subscribes to the keys,
	// atomically with the snapshot, replacing an earlier uploader filter
	// for the same keys. A response always comes: see cloud.Result for
	// truncated and partial results. With q.Subscribe, each key's part of
	// the snapshot is also handed to the CloudNotification handler as a
	// Resync, before every notification that follows it (which may run
	// before Get returns): a handler that keeps a view of the rows from
	// notifications alone is always right.
	Get(ctx context.Context, q cloud.Query) (*cloud.Result, error)
	// Unsubscribe removes the subscription to each key, or with
	// uploaders only those uploaders from it (removing uploaders from an
	// all-uploader subscription is cloud.ErrSubscribedToAll).
	Unsubscribe(ctx context.Context, keys []cloud.Key, uploaders ...ClientRef) error
}

// CloudNotificationHandler receives the notifications of the
// subscriptions a plugin made through its Host's CloudMemory. Calls come
// one at a time, in order, on a goroutine of the plugin's own (never a
// link's or a client's read loop). A handler that falls far behind has
// its backlog replaced by Resync notifications.
type CloudNotificationHandler interface {
	CloudNotification(n cloud.Notification) error
}

// CloudOpKind names a cloud-memory operation.
type CloudOpKind uint8

// Operations that query filters see.
const (
	CloudOpPost CloudOpKind = iota + 1
	CloudOpRelease
	CloudOpGet
	CloudOpUnsubscribe
)

func (k CloudOpKind) String() string {
	switch k {
	case CloudOpPost:
		return "post"
	case CloudOpRelease:
		return "release"
	case CloudOpGet:
		return "get"
	case CloudOpUnsubscribe:
		return "unsubscribe"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// CloudOp is an operation a CloudFilter may reject.
type CloudOp struct {
	Kind CloudOpKind
	// Uploader is who asks: a game client, or a server (ID 0).
	Uploader ClientRef
	// Addr is the asker's remote address ("" for a server).
	Addr string
	// Keys the operation touches (Post: one; Get: Query.Keys).
	Keys []cloud.Key
	// Data is the row a Post would store; valid only during the call.
	Data []byte
	// Query is the Get's query (Get only).
	Query *cloud.Query
	// Uploaders are the uploaders an Unsubscribe removes (empty: all).
	Uploaders []ClientRef
}

// CloudFilter authorizes cloud-memory operations. It runs on the external
// server that forwards a game client's operation (Post, Release, Get,
// Unsubscribe) and on the owner replica (Post, Release, Get; Unsubscribe
// never reaches a replica), for operations of game clients and servers
// alike (op.Uploader.ID is 0 for a server's own). A non-nil error rejects
// the operation: the asker gets cloud.ErrRejected with the error's text,
// and nothing changes. Filters run on the asking connection's goroutine,
// concurrently for different connections; they must be quick. A filter
// that panics rejects.
type CloudFilter interface {
	FilterCloud(op *CloudOp) error
}
