package cloudmemory

import "sync"

// bufPool lends buffers to encode frames in. The host copies the payload
// of every frame it queues (extension.Host, as plugins.Client.Send), so a
// buffer goes back as soon as the send returns: an answer or a request
// then costs no allocation for its encoding. The zero value is ready.
type bufPool struct{ p sync.Pool }

// maxPooledBuf is the largest buffer kept: a rare large result (up to a
// frame) is left to the garbage collector rather than held by the pool.
const maxPooledBuf = 64 << 10

// get borrows an empty buffer; give it back with put.
func (bp *bufPool) get() *[]byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 256)
	return &b
}

// put gives b back once nothing refers to its bytes.
func (bp *bufPool) put(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	bp.p.Put(b)
}
