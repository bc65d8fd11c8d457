package cluster

// flushLoop writes the queues of dirty clients until the server stops;
// then writer goroutines take over the clients still dirty (or, when the
// server starts no more goroutines, the flusher writes them itself, so
// that a Close queued at shutdown is still delivered).
func (h *clientHub) flushLoop() {
	for {
		select {
		case <-h.fwake:
		case <-h.s.ctx.Done():
			h.fmu.Lock()
			h.fstopped = true
			left := h.dirty
			h.dirty = nil
			h.fmu.Unlock()
			for _, c := range left {
				if !h.s.goTracked(c.writeLoop) {
					c.writeLoop()
				}
			}
			return
		}
		h.fmu.Lock()
		batch := h.dirty
		h.dirty = h.spare[:0]
		h.fmu.Unlock()
		for _, c := range batch {
			c.flush()
		}
		clear(batch)
		h.fmu.Lock()
		h.spare = batch[:0]
		h.fmu.Unlock()
	}
}

// markDirty hands c, whose writing flag the caller set, to the flusher
// (or, once it has ended, to a writer goroutine, or to the caller itself
// once no goroutine may start: see handOffLocked).
func (h *clientHub) markDirty(c *session) {
	h.fmu.Lock()
	if h.fstopped {
		h.fmu.Unlock()
		c.mu.Lock()
		c.handOffLocked()
		return
	}
	wasEmpty := len(h.dirty) == 0
	h.dirty = append(h.dirty, c)
	h.fmu.Unlock()
	if wasEmpty {
		select {
		case h.fwake <- struct{}{}:
		default:
		}
	}
}

// flush writes c's queue for the flusher: everything queued in one
// non-blocking write. What the socket does not take at once, a Close, and
// whatever else needs to block go to a writer goroutine; messages queued
// meanwhile make c dirty again.
func (c *session) flush() {
	c.mu.Lock()
	batch := c.queue
	switch {
	case len(batch) == 0: // the client went away meanwhile
		c.writing = false
		c.mu.Unlock()
		return
	case c.closing || c.cc == nil:
		c.handOffLocked()
		return
	}
	n, taken := flushCut(batch)
	if n < len(batch) {
		c.queue = batch[n:] // the flusher comes back for them
	} else {
		c.queue = nil
	}
	batch = batch[:n:n]
	c.queued -= taken
	queued := taken
	c.mu.Unlock()
	wrote, rest, err := c.cc.tryWrite(batch)
	if err != nil {
		c.writeFailed(err)
		return
	}
	c.mu.Lock()
	if !wrote {
		// A blocking write holds the connection (a ping to a full
		// socket): the flusher does not wait for it; a writer does.
		c.queue = append(batch, c.queue...)
		c.queued += queued
		c.handOffLocked()
		return
	}
	switch {
	case rest || c.closing:
		c.handOffLocked()
		return
	case len(c.queue) > 0:
		c.mu.Unlock()
		c.h.markDirty(c)
		return
	default:
		c.writing = false
		c.reuseQueueLocked(batch)
	}
	c.mu.Unlock()
}

// flushBudget bounds the bytes of messages one flush frames for a
// client. What the socket does not take at once is copied again as the
// connection's tail, and a socket takes a few hundred KiB at most: a
// client far behind (the replies to a flood) had its whole queue framed
// and copied at every flush, in proportion to the queue.
const flushBudget = 256 << 10

// flushCut returns how many of the messages at the front of queue one
// flush takes (at least one), and their bytes.
func flushCut(queue [][]byte) (n, bytes int) {
	for n < len(queue) && (n == 0 || bytes+len(queue[n]) <= flushBudget) {
		bytes += len(queue[n])
		n++
	}
	return n, bytes
}

// maxReusedQueue is the longest queue slice a session keeps for its next
// messages; a longer one (a burst) goes to the garbage collector.
const maxReusedQueue = 16

// reuseQueueLocked keeps batch, whose messages were written, as the
// backing of the next queue when nothing was queued meanwhile: a client
// sent one message at a time (every client of a fan-out) then costs no
// allocation per message for its queue.
func (c *session) reuseQueueLocked(batch [][]byte) {
	if c.queue != nil || cap(batch) > maxReusedQueue {
		return
	}
	clear(batch) // the messages' bytes may be shared with other clients
	c.queue = batch[:0]
}

// handOffLocked gives the queue the caller owns to a writer goroutine and
// unlocks c.mu. Once the server starts no more goroutines, the caller (the
// flusher, which shutdown waits for, or a sender late to the flusher's
// end) writes it itself: a Close that shutdown queued behind the caller's
// ownership must still be delivered.
func (c *session) handOffLocked() {
	if c.h.s.goTracked(c.writeLoop) {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.writeLoop()
}
