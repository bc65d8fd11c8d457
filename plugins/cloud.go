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
// matches the sentinel of its code with errors.Is.
var (
	// ErrNoCloudMemory: Host.CloudMemory on a server whose group connects
	// to no cloud-memory group.
	ErrNoCloudMemory = errors.New("cloudrift: no cloud memory for this group")

	ErrCloudBadRequest           = errors.New("cloudrift: cloud: bad request")
	ErrCloudUnavailable          = errors.New("cloudrift: cloud: unavailable")
	ErrCloudRejected             = errors.New("cloudrift: cloud: rejected by a query filter")
	ErrCloudUploadLimit          = errors.New("cloudrift: cloud: upload bytes limit")
	ErrCloudRowTooLarge          = errors.New("cloudrift: cloud: row too large")
	ErrCloudTooManyKeys          = errors.New("cloudrift: cloud: too many keys")
	ErrCloudTooManySubscriptions = errors.New("cloudrift: cloud: too many subscriptions")
	ErrCloudNotSubscribed        = errors.New("cloudrift: cloud: not subscribed")
	ErrCloudSubscribedToAll      = errors.New("cloudrift: cloud: subscribed to all uploaders")
	ErrCloudTimeout              = errors.New("cloudrift: cloud: not confirmed in time")
	ErrCloudShuttingDown         = errors.New("cloudrift: cloud: shutting down")
)

// CloudError is a failed cloud-memory operation: its code and message.
type CloudError struct {
	Code    CloudCode
	Message string
}

func (e *CloudError) Error() string {
	if e.Message == "" {
		return "cloudrift: cloud: " + e.Code.String()
	}
	return fmt.Sprintf("cloudrift: cloud: %s: %s", e.Code, e.Message)
}

// Is reports whether target is the sentinel of e's code.
func (e *CloudError) Is(target error) bool {
	s := CloudCodeError(e.Code)
	return s != nil && s == target
}

// CloudCodeError returns the sentinel error of a code, nil for CloudOK and
// codes without one.
func CloudCodeError(c CloudCode) error {
	switch c {
	case protocol.CloudBadRequest:
		return ErrCloudBadRequest
	case protocol.CloudNotOwner, protocol.CloudUnavailable:
		return ErrCloudUnavailable
	case protocol.CloudRejected:
		return ErrCloudRejected
	case protocol.CloudUploadLimit:
		return ErrCloudUploadLimit
	case protocol.CloudRowTooLarge:
		return ErrCloudRowTooLarge
	case protocol.CloudTooManyKeys:
		return ErrCloudTooManyKeys
	case protocol.CloudTooManySubscriptions:
		return ErrCloudTooManySubscriptions
	case protocol.CloudNotSubscribed:
		return ErrCloudNotSubscribed
	case protocol.CloudSubscribedToAll:
		return ErrCloudSubscribedToAll
	case protocol.CloudTimeout:
		return ErrCloudTimeout
	case protocol.CloudShuttingDown:
		return ErrCloudShuttingDown
	}
	return nil
}

// CloudResult is what Get returns.
type CloudResult struct {
	// Rows in query key order, then uploader order (protocol.CompareRefs),
	// after Offset and within Limit.
	Rows []CloudRow
	// Total counts every matching row of the keys that answered.
	Total int
	// Truncated: the download byte limit cut Rows short (at least one row
	// is returned when any matched).
	Truncated bool
	// Partial: the replicas owning Missing did not answer within the Get
	// timeout; with Subscribe, their rows arrive later in a Resync.
	Partial bool
	Missing []CloudKey
}

// CloudNotificationType says what a notification is about.
type CloudNotificationType uint8

// Notification types.
const (
	// CloudUpdated: Row was created (Created) or overwritten.
	CloudUpdated CloudNotificationType = 1
	// CloudDeleted: Row was deleted (released, or its uploader or the
	// uploader's server is gone); Row holds its last value.
	CloudDeleted CloudNotificationType = 2
	// CloudResync: Rows replace everything known about Key (those rows
	// matching the subscription's uploader filter). Sent when the
	// subscription moved to another replica, when a partial Get's late
	// keys arrive, or when notifications had to be dropped.
	CloudResync CloudNotificationType = 3
)

func (t CloudNotificationType) String() string {
	switch t {
	case CloudUpdated:
		return "updated"
	case CloudDeleted:
		return "deleted"
	case CloudResync:
		return "resync"
	}
	return fmt.Sprintf("notification(%d)", uint8(t))
}

// CloudNotification is one change to a subscribed key.
type CloudNotification struct {
	Type    CloudNotificationType
	Key     CloudKey
	Row     CloudRow   // Updated and Deleted
	Created bool       // Updated: the row did not exist before
	Rows    []CloudRow // Resync
	// Truncated (Resync): the download byte limit cut Rows short.
	Truncated bool
}

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
	// the row with this server, which keeps placing it.
	Post(ctx context.Context, key CloudKey, data []byte) error
	// Release deletes this server's rows under keys; subscribers get
	// Deleted with the last value.
	Release(ctx context.Context, keys ...CloudKey) error
	// Get reads rows; with q.Subscribe it also subscribes to the keys,
	// atomically with the snapshot, replacing an earlier uploader filter
	// for the same keys. A response always comes: see CloudResult for
	// truncated and partial results.
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
