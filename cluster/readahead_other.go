//go:build !unix

package cluster

import (
	"sync"
	"syscall"
)

// readAhead is off where non-blocking reads are not implemented: the
// connection is read directly, as gorilla/websocket asks.
type readAhead struct{}

func (*readAhead) init(syscall.RawConn, *sync.Pool) {}
func (*readAhead) on() bool                         { return false }
func (*readAhead) held() bool                       { return false }
func (*readAhead) read([]byte) (int, error)         { return 0, nil }
