// Package logsample bounds repeated log lines: for each key (a reason) the
// first few occurrences in a window are logged in full, the rest are only
// counted, and the count is reported once when the window ends. A flood of
// failed handshakes or failing hooks then costs a few lines per window,
// never a line per event.
package logsample

import (
	"sync"
	"time"
)

// Defaults for the zero values of Sampler's fields.
const (
	DefaultFirst  = 5
	DefaultWindow = 10 * time.Second
)

// Sampler decides which occurrences of a key are logged. Its zero value is
// not usable: set Report. Methods are safe for concurrent use.
type Sampler struct {
	// First is how many occurrences of a key are logged in full in each
	// window. Zero means DefaultFirst.
	First int
	// Window is how long a key stays sampled after its first occurrence.
	// Zero means DefaultWindow.
	Window time.Duration
	// Report is called once at the end of a window with the number of
	// occurrences of key that were not logged (only when there were some).
	// It runs on a timer's goroutine, or on Stop's caller.
	Report func(key string, suppressed int)

	mu      sync.Mutex
	keys    map[string]*window
	stopped bool
}

type window struct {
	seen       int
	suppressed int
	timer      *time.Timer
}

// Allow records one occurrence of key and reports whether to log it.
func (s *Sampler) Allow(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	if s.keys == nil {
		s.keys = make(map[string]*window)
	}
	w := s.keys[key]
	if w == nil {
		w = &window{}
		s.keys[key] = w
		w.timer = time.AfterFunc(s.window(), func() { s.end(key, w) })
	}
	w.seen++
	if w.seen <= s.first() {
		return true
	}
	w.suppressed++
	return false
}

// end closes key's window and reports what it suppressed.
func (s *Sampler) end(key string, w *window) {
	s.mu.Lock()
	if s.keys[key] != w {
		s.mu.Unlock()
		return
	}
	delete(s.keys, key)
	n := w.suppressed
	s.mu.Unlock()
	if n > 0 {
		s.Report(key, n)
	}
}

// Stop ends every window at once, reporting what each suppressed, and
// makes Allow refuse from then on.
func (s *Sampler) Stop() {
	s.mu.Lock()
	s.stopped = true
	keys := s.keys
	s.keys = nil
	s.mu.Unlock()
	for key, w := range keys {
		w.timer.Stop()
		if w.suppressed > 0 {
			s.Report(key, w.suppressed)
		}
	}
}

func (s *Sampler) first() int {
	if s.First <= 0 {
		return DefaultFirst
	}
	return s.First
}

func (s *Sampler) window() time.Duration {
	if s.Window <= 0 {
		return DefaultWindow
	}
	return s.Window
}
