//go:build !unix

package cluster

import "syscall"

// nonblockWriter writes nothing where non-blocking writes are not
// implemented: everything goes to a writer goroutine.
type nonblockWriter struct{}

func newNonblockWriter(syscall.RawConn) *nonblockWriter { return nil }

func (*nonblockWriter) write([]byte) (int, error) { return 0, nil }
