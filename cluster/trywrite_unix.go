//go:build unix

package cluster

import "syscall"

// nonblockWriter makes one non-blocking write to a socket. It uses
// RawConn.Control rather than Write so that the socket's write deadline
// (left over from an earlier blocking write) does not apply; callers
// serialize writes themselves. Its method value is made once per
// connection, so a write allocates nothing.
type nonblockWriter struct {
	raw  syscall.RawConn
	ctl  func(fd uintptr)
	buf  []byte
	n    int
	werr error
}

func newNonblockWriter(raw syscall.RawConn) *nonblockWriter {
	w := &nonblockWriter{raw: raw}
	w.ctl = w.control
	return w
}

func (w *nonblockWriter) control(fd uintptr) {
	for {
		w.n, w.werr = syscall.Write(int(fd), w.buf)
		if w.werr != syscall.EINTR {
			return
		}
	}
}

// write writes what the socket takes of b at once and returns how much:
// 0 when its buffer is full.
func (w *nonblockWriter) write(b []byte) (int, error) {
	w.buf = b
	err := w.raw.Control(w.ctl)
	n, werr := w.n, w.werr
	w.buf, w.werr = nil, nil
	switch {
	case err != nil:
		return 0, err
	case werr == syscall.EAGAIN:
		return 0, nil
	case werr != nil:
		return 0, werr
	}
	return max(n, 0), nil
}
