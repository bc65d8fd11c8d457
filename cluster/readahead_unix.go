//go:build unix

package cluster

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// readAhead reads a client's socket in large chunks without holding a
// large buffer while the client is quiet. gorilla/websocket reads through
// a small bufio.Reader (clients get 512 bytes, to keep idle clients
// small), so reading the socket directly took two or more read(2) calls
// per 1 KB message. Here each read(2) goes into a buffer of readAheadSize
// taken from a pool shared by the hub's clients, only once the socket is
// readable: the buffer goes back to the pool the moment its last byte is
// copied out, and a client waiting for data holds none. A busy client
// costs one read(2) per chunk of messages; an idle one costs what it
// did before, plus this struct.
//
// Only the connection's reader uses it (one read at a time, as io.Reader
// requires). A zero readAhead is off.
type readAhead struct {
	raw  syscall.RawConn
	pool *sync.Pool // of *[]byte of readAheadSize
	buf  *[]byte    // holds the unread bytes (*buf)[off:end]; nil when none
	off  int
	end  int
	fill func(fd uintptr) bool // fillFrom, made once
	err  error                 // of the last fill
}

// init turns r on for the socket raw, with buffers from pool.
func (r *readAhead) init(raw syscall.RawConn, pool *sync.Pool) {
	r.raw, r.pool = raw, pool
	r.fill = r.fillFrom
}

func (r *readAhead) on() bool { return r.pool != nil }

// held reports whether r holds a buffer (unread bytes).
func (r *readAhead) held() bool { return r.buf != nil }

// read copies into p what the last chunk still holds, or reads a new
// chunk, waiting (under the socket's read deadline) until it is readable.
func (r *readAhead) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.buf == nil {
		if err := r.raw.Read(r.fill); err != nil {
			return 0, err
		}
		if err := r.err; err != nil {
			r.err = nil
			return 0, err
		}
	}
	n := copy(p, (*r.buf)[r.off:r.end])
	r.off += n
	if r.off == r.end {
		r.pool.Put(r.buf)
		r.buf = nil
	}
	return n, nil
}

// fillFrom makes one non-blocking read(2) into a pooled buffer. It reports
// false (and keeps no buffer) when the socket has nothing yet, so that
// RawConn.Read waits for it to become readable and calls it again.
func (r *readAhead) fillFrom(fd uintptr) bool {
	b := r.pool.Get().(*[]byte)
	for {
		n, err := syscall.Read(int(fd), *b)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			r.pool.Put(b)
			return false
		case err != nil:
			r.pool.Put(b)
			r.err = &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", err)}
			return true
		case n <= 0:
			r.pool.Put(b)
			r.err = io.EOF
			return true
		}
		r.buf, r.off, r.end = b, 0, n
		return true
	}
}
