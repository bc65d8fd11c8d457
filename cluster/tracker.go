package cluster

import "sync"

// tracker runs the goroutines of a server and waits for them. Once closed
// it starts no more, so that wait cannot miss one: a caller whose
// goroutine it refuses cleans up instead (closes the connection it was to
// serve, drops the work it was to do).
type tracker struct {
	mu     sync.Mutex // guards closed and orders it with wg.Add
	closed bool
	wg     sync.WaitGroup
}

// run starts f on a tracked goroutine and reports true, or reports false
// once the tracker is closed.
func (t *tracker) run(f func()) bool {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return false
	}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		f()
	}()
	return true
}

// close refuses every later run. It does not wait.
func (t *tracker) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
}

// closeAndWait closes the tracker and waits for its goroutines.
func (t *tracker) closeAndWait() {
	t.close()
	t.wg.Wait()
}
