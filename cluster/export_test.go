package cluster

// This file is in package cluster because it hands the package cluster_test
// tests, and only tests, the few handles on a running server that the
// public API does not give: faults under a live link, and the lifecycle
// state between two public calls. Each is as small as the test needs.

// BreakLinks closes the connection under each of s's live links, as a
// connection reset would, without a Close frame.
func BreakLinks(s *Server) {
	for _, l := range s.liveLinks() {
		l.conn.Close()
	}
}

// QueueRawOnLink queues b, as raw bytes that need not be a valid frame, to
// go out on s's live link with the server peer, and wakes the link's
// writer. It reports whether s has such a link.
func QueueRawOnLink(s *Server, peer string, b []byte) bool {
	for _, l := range s.liveLinks() {
		if l.r.id != peer {
			continue
		}
		l.mu.Lock()
		l.pending = append(l.pending, b...)
		l.mu.Unlock()
		select {
		case l.wake <- struct{}{}:
		default: // the writer is already due to wake
		}
		return true
	}
	return false
}

// Closing reports whether Close has marked s closed, which it does before
// it waits for the server's work to end.
func Closing(s *Server) bool { return serverState(s.state.Load()) == stateClosed }

// GoTracked runs f on a goroutine that s's stop waits for, as the server
// runs its own work; once s has stopped, it runs nothing and reports false.
func GoTracked(s *Server, f func()) bool { return s.goTracked(f) }

// SetPlainClientReads makes the client connections s accepts from now on
// read their sockets directly (on) or in chunks (off, the default), for
// benchmarks that compare the two.
func SetPlainClientReads(s *Server, on bool) { s.clients.plainReads.Store(on) }

// ClientReadPauses returns how many times s paused reading its client id
// because a link the client's messages went to was busy; -1 when s holds
// no such client.
func ClientReadPauses(s *Server, id uint64) int {
	c := s.localClient(id)
	if c == nil {
		return -1
	}
	return int(c.pauses.Load())
}

// LinkSocketPath is the socket a server advertising addr listens on in
// dir (localsock.go).
func LinkSocketPath(dir, addr string) string { return socketPath(dir, addr) }
