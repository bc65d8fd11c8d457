package protocol

import (
	"errors"
	"fmt"
)

// The cloud-memory API types shared by the client SDK (package client)
// and the plugin API (package plugins), which re-export them under their
// own names. Unlike the messages in cloud.go they are not encoded.

// Cloud-memory errors. A failed operation returns a *CloudError, which
// matches the sentinel of its code with errors.Is (see CloudCodeError).
var (
	ErrCloudBadRequest           = errors.New("protocol: cloud: bad request")
	ErrCloudUnavailable          = errors.New("protocol: cloud: unavailable")
	ErrCloudRejected             = errors.New("protocol: cloud: rejected by a query filter")
	ErrCloudUploadLimit          = errors.New("protocol: cloud: upload bytes limit")
	ErrCloudRowTooLarge          = errors.New("protocol: cloud: row too large")
	ErrCloudTooManyKeys          = errors.New("protocol: cloud: too many keys")
	ErrCloudTooManySubscriptions = errors.New("protocol: cloud: too many subscriptions")
	ErrCloudNotSubscribed        = errors.New("protocol: cloud: not subscribed")
	ErrCloudSubscribedToAll      = errors.New("protocol: cloud: subscribed to all uploaders")
	ErrCloudTimeout              = errors.New("protocol: cloud: not confirmed in time")
	ErrCloudShuttingDown         = errors.New("protocol: cloud: shutting down")
)

// CloudError is a cloud-memory operation that was refused or could not
// complete: its code and message.
type CloudError struct {
	Code    CloudCode
	Message string
}

func (e *CloudError) Error() string {
	if e.Message == "" {
		return "protocol: cloud: " + e.Code.String()
	}
	return fmt.Sprintf("protocol: cloud: %s: %s", e.Code, e.Message)
}

// Is reports whether target is the sentinel of e's code.
func (e *CloudError) Is(target error) bool {
	s := CloudCodeError(e.Code)
	return s != nil && s == target
}

// NewCloudError returns nil for CloudOK and a *CloudError of code and msg
// otherwise: how an answer's code and message become the caller's error.
func NewCloudError(code CloudCode, msg string) error {
	if code == CloudOK {
		return nil
	}
	return &CloudError{Code: code, Message: msg}
}

// CloudCodeError returns the sentinel error of a code, nil for CloudOK and
// codes without one. CloudNotOwner maps to ErrCloudUnavailable.
func CloudCodeError(c CloudCode) error {
	switch c {
	case CloudBadRequest:
		return ErrCloudBadRequest
	case CloudNotOwner, CloudUnavailable:
		return ErrCloudUnavailable
	case CloudRejected:
		return ErrCloudRejected
	case CloudUploadLimit:
		return ErrCloudUploadLimit
	case CloudRowTooLarge:
		return ErrCloudRowTooLarge
	case CloudTooManyKeys:
		return ErrCloudTooManyKeys
	case CloudTooManySubscriptions:
		return ErrCloudTooManySubscriptions
	case CloudNotSubscribed:
		return ErrCloudNotSubscribed
	case CloudSubscribedToAll:
		return ErrCloudSubscribedToAll
	case CloudTimeout:
		return ErrCloudTimeout
	case CloudShuttingDown:
		return ErrCloudShuttingDown
	}
	return nil
}

// CloudGetResult is what a Get returns.
type CloudGetResult struct {
	// Rows in query key order, then uploader order (CompareRefs: server
	// ID, then client ID), after Offset and within Limit.
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

// CloudNotificationType says what a CloudNotification is about. Its
// Updated and Deleted values equal the CloudNoticeType values of the
// notice they come from.
type CloudNotificationType uint8

// Notification types.
const (
	// CloudNotifyUpdated: Row was created (Created) or overwritten.
	CloudNotifyUpdated CloudNotificationType = 1
	// CloudNotifyDeleted: Row was deleted (released, or its uploader
	// disconnected, or the uploader's server is gone); Row holds its last
	// value.
	CloudNotifyDeleted CloudNotificationType = 2
	// CloudNotifyResync: Rows replace everything known about Key (those
	// rows matching the subscription's uploader filter). Sent when the
	// subscription moved to another replica, when a partial Get's late
	// keys arrive, or when notifications had to be dropped.
	CloudNotifyResync CloudNotificationType = 3
)

func (t CloudNotificationType) String() string {
	switch t {
	case CloudNotifyUpdated:
		return "updated"
	case CloudNotifyDeleted:
		return "deleted"
	case CloudNotifyResync:
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
