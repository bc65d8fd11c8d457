package cluster

import (
	"cmp"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
)

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
	// BusySends counts sends that left a link's outbound queue at or over
	// its high-water mark (half of links.queueBytes); SendsRefused counts
	// sends refused with plugins.ErrBusy (the queue was full).
	BusySends, SendsRefused uint64
	// ClientPauses counts the times a game client's reads were paused
	// until a busy link drained; LinkPauses the times a link's reads were.
	ClientPauses, LinkPauses uint64
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
	st.BusySends = s.flow.busySends.Load()
	st.SendsRefused = s.flow.refused.Load()
	st.ClientPauses = s.flow.pauses.Load()
	st.LinkPauses = s.flow.linkWaits.Load()
	return st
}

// LinkTotals are the counters of links to the servers of one related
// group, links that are gone included.
type LinkTotals struct {
	// MessagesIn and MessagesOut count messages as Stats does.
	MessagesIn, MessagesOut uint64
	// BytesIn and BytesOut count frame bytes (headers included) of every
	// kind after the handshake, heartbeats included.
	BytesIn, BytesOut uint64
}

// GroupStats is this server's view of one related group.
type GroupStats struct {
	Group     string
	Direction plugins.Direction
	// Members counts the group's servers the registry lists (or whose
	// link is still up).
	Members int
	// LinksUp counts links to the group's servers past the handshake.
	LinksUp int
	// QueueBytes is the bytes waiting in the send queues of those links.
	QueueBytes int
	LinkTotals
}

// PeerStats is one remote server seen from this server.
type PeerStats struct {
	ID          string
	Group       string
	Direction   plugins.Direction
	Incarnation uint64
	State       plugins.State
	Linked      bool
	// Transport is the network of its current link: "tcp", or "unix" for
	// a server of this host reached through its link socket; "" without
	// a link.
	Transport  string
	QueueBytes int
	// LinkTotals are the counters of its current link; zero without one.
	LinkTotals
}

// Groups returns the related groups' counters, sorted by name.
func (s *Server) Groups() []GroupStats {
	s.mu.Lock()
	out := make([]GroupStats, 0, len(s.related))
	for _, g := range s.related {
		out = append(out, GroupStats{Group: g.name, Direction: g.dir, Members: len(g.servers), LinkTotals: g.closed})
	}
	links := make([]*link, 0, len(s.linkSet))
	for l := range s.linkSet {
		links = append(links, l)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	for _, l := range links {
		i := sort.Search(len(out), func(i int) bool { return out[i].Group >= l.r.g.name })
		if i == len(out) || out[i].Group != l.r.g.name {
			continue
		}
		t, q := l.totals()
		out[i].LinksUp++
		out[i].QueueBytes += q
		out[i].LinkTotals.add(t)
	}
	return out
}

// Peers returns the remote servers this server knows, sorted by group
// and ID.
func (s *Server) Peers() []PeerStats {
	s.mu.Lock()
	var rs []*remote
	for _, g := range s.related {
		for _, r := range g.servers {
			rs = append(rs, r)
		}
	}
	s.mu.Unlock()
	out := make([]PeerStats, 0, len(rs))
	for _, r := range rs {
		p := PeerStats{ID: r.id, Group: r.g.name, Direction: r.g.dir, Incarnation: r.inc, State: r.State()}
		if l := r.link.Load(); l != nil {
			p.Linked = true
			p.Transport = l.transport
			p.LinkTotals, p.QueueBytes = l.totals()
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b PeerStats) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.ID, b.ID))
	})
	return out
}

func (t *LinkTotals) add(u LinkTotals) {
	t.MessagesIn += u.MessagesIn
	t.MessagesOut += u.MessagesOut
	t.BytesIn += u.BytesIn
	t.BytesOut += u.BytesOut
}

// totals returns the link's counters and the bytes in its send queue.
func (l *link) totals() (LinkTotals, int) {
	l.mu.Lock()
	t := LinkTotals{MessagesOut: l.out, BytesOut: l.outBytes}
	q := len(l.pending) + l.unwritten
	l.mu.Unlock()
	t.MessagesIn = l.in.Load()
	t.BytesIn = l.inBytes.Load()
	return t, q
}

// reasonCounts counts events by close reason without locks: one slot per
// reason, the last for reasons past the table.
type reasonCounts [32]atomic.Uint64

func (c *reasonCounts) add(r protocol.Reason) {
	c[min(int(r), len(c)-1)].Add(1)
}

// snapshot returns the non-zero counts by reason label.
func (c *reasonCounts) snapshot() map[string]uint64 {
	m := make(map[string]uint64)
	for i := range c {
		if n := c[i].Load(); n > 0 {
			m[ReasonLabel(protocol.Reason(i))] += n
		}
	}
	return m
}

// reasonLabels are the reasons' metric labels: short, stable, snake_case
// (the protocol's names are sentences for people).
var reasonLabels = map[protocol.Reason]string{
	protocol.ReasonNone:             "none",
	protocol.ReasonShutdown:         "shutdown",
	protocol.ReasonProtocol:         "protocol",
	protocol.ReasonFrameTooLarge:    "frame_too_large",
	protocol.ReasonAuth:             "auth",
	protocol.ReasonWrongSystem:      "wrong_system",
	protocol.ReasonNotDownstream:    "not_downstream",
	protocol.ReasonVersion:          "version",
	protocol.ReasonHandshakeTimeout: "handshake_timeout",
	protocol.ReasonHeartbeatTimeout: "heartbeat_timeout",
	protocol.ReasonSlowPeer:         "slow_peer",
	protocol.ReasonReplaced:         "replaced",
	protocol.ReasonClientProtocol:   "client_protocol",
	protocol.ReasonPeerLeft:         "peer_left",
	protocol.ReasonIO:               "io",
	protocol.ReasonUnknownPeer:      "unknown_peer",
	protocol.ReasonWriteStalled:     "write_stalled",
	protocol.ReasonMessageTooLarge:  "message_too_large",
	protocol.ReasonRateLimited:      "rate_limited",
	protocol.ReasonServerFull:       "server_full",
	protocol.ReasonReadTimeout:      "read_timeout",
	protocol.ReasonSlowClient:       "slow_client",
	protocol.ReasonAuthRefused:      "auth_refused",
	protocol.ReasonKicked:           "kicked",
	protocol.ReasonWriteTimeout:     "write_timeout",
}

// ReasonLabel returns r's metric label: "heartbeat_timeout", ...;
// "unknown" for a reason this build does not know.
func ReasonLabel(r protocol.Reason) string {
	if l, ok := reasonLabels[r]; ok {
		return l
	}
	return "unknown"
}

// Closes are counts by close reason, keyed by ReasonLabel.
type Closes struct {
	// Links counts links that went down; Refused connections refused
	// during the handshake; Clients game-client sessions that ended.
	Links, Refused, Clients map[string]uint64
}

// Closes returns the server's close and refusal counts by reason.
func (s *Server) Closes() Closes {
	return Closes{Links: s.linkCloses.snapshot(), Refused: s.refusedBy.snapshot(), Clients: s.clientCloses.snapshot()}
}

// refuse counts a connection refused during the handshake.
func (s *Server) refuse(r protocol.Reason) {
	s.refused.Add(1)
	s.refusedBy.add(r)
}

// ClientStats are the counters of an external server's game clients.
type ClientStats struct {
	// External is set on servers of external groups, the only ones that
	// take game clients.
	External                bool
	Connected               int
	MessagesIn, MessagesOut uint64
}

// Clients returns the game-client counters; zero on internal groups.
func (s *Server) Clients() ClientStats {
	h := s.clients
	if h == nil {
		return ClientStats{}
	}
	return ClientStats{External: true, Connected: int(h.count.Load()), MessagesIn: h.msgIn.Load(), MessagesOut: h.msgOut.Load()}
}

// HookFailures counts the failures of one plugin's hook.
type HookFailures struct {
	Plugin, Hook   string
	Errors, Panics uint64
}

// hookTally counts one plugin's hook failures by hook name. Failures are
// rare, so a mutex and a map are cheap enough.
type hookTally struct {
	mu sync.Mutex
	m  map[string]*[2]uint64 // errors, panics
}

func (t *hookTally) add(hook string, panicked bool) {
	t.mu.Lock()
	if t.m == nil {
		t.m = make(map[string]*[2]uint64)
	}
	c := t.m[hook]
	if c == nil {
		c = new([2]uint64)
		t.m[hook] = c
	}
	if panicked {
		c[1]++
	} else {
		c[0]++
	}
	t.mu.Unlock()
}

// failed counts a failure of slot's hook.
func (hs *hookSet) failed(slot *pluginSlot, hook string, panicked bool) {
	if panicked {
		hs.s.hookPanics.Add(1)
	} else {
		hs.s.hookErrors.Add(1)
	}
	slot.tally.add(hook, panicked)
}

// HookFailures returns the hook failures per plugin and hook, sorted.
func (s *Server) HookFailures() []HookFailures {
	var out []HookFailures
	for i := range s.hooks.slots {
		slot := &s.hooks.slots[i]
		slot.tally.mu.Lock()
		for hook, c := range slot.tally.m {
			out = append(out, HookFailures{Plugin: slot.name, Hook: hook, Errors: c[0], Panics: c[1]})
		}
		slot.tally.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b HookFailures) int {
		return cmp.Or(cmp.Compare(a.Plugin, b.Plugin), cmp.Compare(a.Hook, b.Hook))
	})
	return out
}

// RegistryErrors counts registry calls that failed: registering, watching
// and deregistering.
func (s *Server) RegistryErrors() uint64 { return s.registryErrors.Load() }

// PluginsDo calls f with each hosted plugin in order, for readers of
// optional interfaces (such as a store's gauges) at scrape time.
func (s *Server) PluginsDo(f func(name string, p plugins.Plugin)) {
	for i := range s.hooks.slots {
		f(s.hooks.slots[i].name, s.hooks.slots[i].p)
	}
}
