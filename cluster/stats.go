package cluster

// Stats is a snapshot of a server's counters.
type Stats struct {
	// LinksUp counts links past the handshake.
	LinksUp int
	// Remotes counts remote servers that joined and have not left.
	Remotes int
	// MessagesIn and MessagesOut count messages received and sent over
	// links since start: messages between plugins, messages routed to game
	// clients (one per frame, however many clients it reaches), and
	// extension frames such as cloud-memory operations.
	MessagesIn, MessagesOut uint64
	// Refused counts connections refused during the handshake.
	Refused uint64
	// Clients counts game clients connected (external groups).
	Clients int
	// HookErrors and HookPanics count plugin hooks that failed.
	HookErrors, HookPanics uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{LinksUp: len(s.linkSet), MessagesIn: s.closedIn, MessagesOut: s.closedOut}
	links := make([]*link, 0, len(s.linkSet))
	for l := range s.linkSet {
		links = append(links, l)
	}
	for _, g := range s.related {
		st.Remotes += len(g.servers)
	}
	s.mu.Unlock()
	for _, l := range links {
		in, out := l.counts()
		st.MessagesIn += in
		st.MessagesOut += out
	}
	st.Refused = s.refused.Load()
	if s.clients != nil {
		st.Clients = int(s.clients.count.Load())
	}
	st.HookErrors = s.hookErrors.Load()
	st.HookPanics = s.hookPanics.Load()
	return st
}
