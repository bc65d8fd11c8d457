package plugins

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloudrift/cloudrift/protocol"
)

// The cloud memory as plugins see it. A group whose servers run the
// CloudMemoryPlugin is a cloud-memory group; every server whose group
// connects to one gets a cloud-memory client, provisioned by the runtime
// under CloudMemoryClientPlugin, and its plugins reach it with
// Host.CloudMemory. Rows posted through it belong to the server itself
// (uploader ClientRef{Server: its ID, ID: 0}) and live as long as the
// server does. An external server also forwards its game clients'
// operations (the client SDK's), with their identity, enforcing their
// limits and running the CloudFilter hooks.

// Names of the cloud-memory plugins. The runtime provisions the client by
// name, so a binary that runs a system with a cloud group imports the
// package that registers both (plugins/cloudmemory).
const (
	CloudMemoryPlugin       = "cloudmemory"
	CloudMemoryClientPlugin = "cloudmemory-client"
)

// Cloud-memory types shared with the wire format.
type (
	// CloudKey names what a row is about: (primary, secondary).
	CloudKey = protocol.CloudKey
	// CloudRow is one row: key, uploader, the uploader's address, the
	// server it came through, and its data.
	CloudRow = protocol.CloudRow
	// CloudQuery selects rows for Get: keys, an optional uploader filter,
	// offset, limit, and whether to subscribe.
	CloudQuery = protocol.CloudQuery
	// CloudCode is the outcome code of an operation.
	CloudCode = protocol.CloudCode
)

// Cloud-memory errors. A failed operation returns a *CloudError, which
// matches the sentinel of its code with errors.Is. The ErrCloud sentinels
// are protocol's, shared with the client SDK.
var (
	// ErrNoCloudMemory: Host.CloudMemory on a server whose group connects
	// to no cloud-memory group.
	ErrNoCloudMemory = errors.New("cloudrift: no cloud memory for this group")

	ErrCloudBadRequest           = protocol.ErrCloudBadRequest
	ErrCloudUnavailable          = protocol.ErrCloudUnavailable
	ErrCloudRejected             = protocol.ErrCloudRejected
	ErrCloudUploadLimit          = protocol.ErrCloudUploadLimit
	ErrCloudRowTooLarge          = protocol.ErrCloudRowTooLarge
	ErrCloudTooManyKeys          = protocol.ErrCloudTooManyKeys
	ErrCloudTooManySubscriptions = protocol.ErrCloudTooManySubscriptions
	ErrCloudNotSubscribed        = protocol.ErrCloudNotSubscribed
	ErrCloudSubscribedToAll      = protocol.ErrCloudSubscribedToAll
	ErrCloudTimeout              = protocol.ErrCloudTimeout
	ErrCloudShuttingDown         = protocol.ErrCloudShuttingDown
)

// Cloud-memory API types, shared with the client SDK.
type (
	// CloudError is a failed cloud-memory operation: its code and
	// message. Its Is matches the sentinel of its code.
	CloudError = protocol.CloudError
	// CloudResult is what Get returns: rows in query key order, then
	// uploader order (protocol.CompareRefs), after Offset and within
	// Limit, with Total, Truncated, Partial and Missing.
	CloudResult = protocol.CloudGetResult
	// CloudNotificationType says what a notification is about.
	CloudNotificationType = protocol.CloudNotificationType
	// CloudNotification is one change to a subscribed key.
	CloudNotification = protocol.CloudNotification
)

// CloudCodeError returns the sentinel error of a code, nil for CloudOK and
// codes without one.
func CloudCodeError(c CloudCode) error { return protocol.CloudCodeError(c) }

// Notification types (see protocol.CloudNotificationType).
const (
	// CloudUpdated: Row was created (Created) or overwritten.
	CloudUpdated = protocol.CloudNotifyUpdated
	// CloudDeleted: Row was deleted (released, or its uploader or the
	// uploader's server is gone); Row holds its last value.
	CloudDeleted = protocol.CloudNotifyDeleted
	// CloudResync: Rows replace everything known about Key (those rows
	// matching the subscription's uploader filter). Sent when the
	// subscription moved to another replica, when a partial Get's late
	// keys arrive, or when notifications had to be dropped.
	CloudResync = protocol.CloudNotifyResync
)

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
	// copied. Subscribers get Updated. An error that is a timeout leaves
	// the row with this server, which keeps placing it. Before the first
	// cloud replica links, Post waits for it; once every replica that
	// linked is gone, it fails at once with ErrCloudUnavailable.
	Post(ctx context.Context, key CloudKey, data []byte) error
	// Release deletes this server's rows under keys; subscribers get
	// Deleted with the last value.
	Release(ctx context.Context, keys ...CloudKey) error
	// Get reads rows; with q.Subscribe it also subscribes to the keys,
	// atomically with the snapshot, replacing an earlier uploader filter
	// for the same keys. A response always comes: see CloudResult for
	// truncated and partial results. With q.Subscribe, each key's part of
	// the snapshot is also handed to the CloudNotification handler as a
	// Resync, before every notification that follows it (which may run
	// before Get returns): a handler that keeps a view of the rows from
	// notifications alone is always right.
	Get(ctx context.Context, q CloudQuery) (*CloudResult, error)
	// Unsubscribe removes the subscription to each key, or with
	// uploaders only those uploaders from it (removing uploaders from an
	// all-uploader subscription is ErrCloudSubscribedToAll).
	Unsubscribe(ctx context.Context, keys []CloudKey, uploaders ...ClientRef) error
}

// CloudNotificationHandler receives the notifications of the
// subscriptions a plugin made through its Host's CloudMemory. Calls come
// one at a time, in order, on a goroutine of the plugin's own (never a
// link's or a client's read loop). A handler that falls far behind has
// its backlog replaced by Resync notifications.
type CloudNotificationHandler interface {
	CloudNotification(n CloudNotification) error
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
	Keys []CloudKey
	// Data is the row a Post would store; valid only during the call.
	Data []byte
	// Query is the Get's query (Get only).
	Query *CloudQuery
	// Uploaders are the uploaders an Unsubscribe removes (empty: all).
	Uploaders []ClientRef
}

// CloudFilter authorizes cloud-memory operations. It runs on the external
// server that forwards a game client's operation (Post, Release, Get,
// Unsubscribe) and on the owner replica (Post, Release, Get; Unsubscribe
// never reaches a replica), for operations of game clients and servers
// alike (op.Uploader.ID is 0 for a server's own). A non-nil error rejects
// the operation: the asker gets ErrCloudRejected with the error's text,
// and nothing changes. Filters run on the asking connection's goroutine,
// concurrently for different connections; they must be quick. A filter
// that panics rejects.
type CloudFilter interface {
	FilterCloud(op *CloudOp) error
}

// CloudMemoryProvider is implemented by the cloud-memory client plugin:
// Host.CloudMemory returns a session of it.
type CloudMemoryProvider interface {
	// CloudSession returns the CloudMemory of one plugin, called name in
	// logs. Its subscriptions' notifications go to notify (nil: dropped),
	// called as CloudNotificationHandler documents.
	CloudSession(name string, notify func(CloudNotification)) CloudMemory
}
