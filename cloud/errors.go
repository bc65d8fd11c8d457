package cloud

import (
	"errors"
	"fmt"
)

// Code is the outcome of a cloud-memory operation; it travels in every
// answer.
type Code uint16

// Codes. Every limit has its own code; none of them changes a stored row.
const (
	CodeOK                   Code = 0
	CodeBadRequest           Code = 1  // malformed or invalid request (no keys, key too long, ...)
	CodeNotOwner             Code = 2  // replica: the key is owned by another replica; retry after refreshing
	CodeUnavailable          Code = 3  // no replica answered in time, or none is reachable
	CodeRejected             Code = 4  // a query filter rejected the operation
	CodeUploadLimit          Code = 5  // the uploader's rows would exceed the upload bytes limit
	CodeRowTooLarge          Code = 6  // the row's data exceeds the row size limit
	CodeTooManyKeys          Code = 7  // the query names more keys than allowed
	CodeTooManySubscriptions Code = 8  // the subscriber would exceed its subscriptions limit
	CodeNotSubscribed        Code = 9  // Unsubscribe of a key (or uploader) that is not subscribed
	CodeSubscribedToAll      Code = 10 // Unsubscribe of uploaders from an all-uploader subscription
	CodeTimeout              Code = 11 // the operation was not confirmed in time
	CodeShuttingDown         Code = 12 // the server is shutting down
	CodeRateLimited          Code = 13 // the client sent faster than its rate limit; retry later
)

var codeNames = [...]string{
	CodeOK:                   "ok",
	CodeBadRequest:           "bad request",
	CodeNotOwner:             "not owner",
	CodeUnavailable:          "unavailable",
	CodeRejected:             "rejected",
	CodeUploadLimit:          "upload limit",
	CodeRowTooLarge:          "row too large",
	CodeTooManyKeys:          "too many keys",
	CodeTooManySubscriptions: "too many subscriptions",
	CodeNotSubscribed:        "not subscribed",
	CodeSubscribedToAll:      "subscribed to all uploaders",
	CodeTimeout:              "timeout",
	CodeShuttingDown:         "shutting down",
	CodeRateLimited:          "rate limited",
}

func (c Code) String() string {
	if int(c) < len(codeNames) && codeNames[c] != "" {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint16(c))
}

// Sentinel errors. A failed operation returns an *Error, which matches the
// sentinel of its code with errors.Is (see CodeError).
var (
	ErrBadRequest           = errors.New("cloud: bad request")
	ErrUnavailable          = errors.New("cloud: unavailable")
	ErrRejected             = errors.New("cloud: rejected by a query filter")
	ErrUploadLimit          = errors.New("cloud: upload bytes limit")
	ErrRowTooLarge          = errors.New("cloud: row too large")
	ErrTooManyKeys          = errors.New("cloud: too many keys")
	ErrTooManySubscriptions = errors.New("cloud: too many subscriptions")
	ErrNotSubscribed        = errors.New("cloud: not subscribed")
	ErrSubscribedToAll      = errors.New("cloud: subscribed to all uploaders")
	ErrTimeout              = errors.New("cloud: not confirmed in time")
	ErrShuttingDown         = errors.New("cloud: shutting down")
	ErrRateLimited          = errors.New("cloud: rate limited")
)

// Error is a cloud-memory operation that was refused or could not
// complete: its code and message.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "cloud: " + e.Code.String()
	}
	return fmt.Sprintf("cloud: %s: %s", e.Code, e.Message)
}

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool {
	s := CodeError(e.Code)
	return s != nil && s == target
}

// NewError returns nil for CodeOK and an *Error of code and msg otherwise:
// how an answer's code and message become the caller's error.
func NewError(code Code, msg string) error {
	if code == CodeOK {
		return nil
	}
	return &Error{Code: code, Message: msg}
}

// CodeError returns the sentinel error of a code, nil for CodeOK and codes
// without one. CodeNotOwner maps to ErrUnavailable.
func CodeError(c Code) error {
	switch c {
	case CodeBadRequest:
		return ErrBadRequest
	case CodeNotOwner, CodeUnavailable:
		return ErrUnavailable
	case CodeRejected:
		return ErrRejected
	case CodeUploadLimit:
		return ErrUploadLimit
	case CodeRowTooLarge:
		return ErrRowTooLarge
	case CodeTooManyKeys:
		return ErrTooManyKeys
	case CodeTooManySubscriptions:
		return ErrTooManySubscriptions
	case CodeNotSubscribed:
		return ErrNotSubscribed
	case CodeSubscribedToAll:
		return ErrSubscribedToAll
	case CodeTimeout:
		return ErrTimeout
	case CodeShuttingDown:
		return ErrShuttingDown
	case CodeRateLimited:
		return ErrRateLimited
	}
	return nil
}
