package dashboard

import (
	"slices"
	"time"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/registry"
)

// Server states in State.
const (
	// StateReady: the server's /status says it is ready.
	StateReady = "ready"
	// StateNotReady: the server answers but is not ready (starting,
	// draining, closed, or missing links); Reason says why.
	StateNotReady = "not_ready"
	// StateDraining: the server is draining (cluster.Server.Drain): it
	// takes no new game clients and moves those it holds elsewhere.
	StateDraining = "draining"
	// StateDown: the server's operations port does not answer, or the
	// server left the registry and no peer links with it.
	StateDown = "down"
	// StateUnmonitored: the registry lists the server or a peer links
	// with it, but the dashboard knows no operations port of it.
	StateUnmonitored = "unmonitored"
)

// goneAfter is how long a server no source mentions any more stays on
// the page, as down.
const goneAfter = time.Minute

// maxEvents is how many closes the state keeps, newest first.
const maxEvents = 40

// State is the document of /state.json.
type State struct {
	System  string        `json:"system"`
	At      time.Time     `json:"at"`
	Groups  []GroupState  `json:"groups"`
	Servers []ServerState `json:"servers"`
	Links   []LinkState   `json:"links"`
	Events  []Event       `json:"events"`
	Errors  []string      `json:"errors"` // operations ports that did not answer
}

// GroupState sums a group's servers.
type GroupState struct {
	Name     string  `json:"name"`
	External bool    `json:"external"`
	Replicas int     `json:"replicas"` // declared in the system file
	Servers  int     `json:"servers"`  // on the page
	Ready    int     `json:"ready"`
	Clients  int     `json:"clients"`
	Rate     float64 `json:"messages_per_second"` // sent and received over its servers' links
}

// ServerState is one server.
type ServerState struct {
	ID      string  `json:"id"`
	Group   string  `json:"group"`
	State   string  `json:"state"`
	Reason  string  `json:"reason,omitempty"`
	Clients *int    `json:"clients,omitempty"`
	Rate    float64 `json:"messages_per_second"`
}

// LinkState is the link between two servers, A < B.
type LinkState struct {
	A      string  `json:"a"`
	B      string  `json:"b"`
	Linked bool    `json:"linked"`
	State  string  `json:"state"`
	Rate   float64 `json:"messages_per_second"` // the larger of both ends' counts
}

// Event is a rise of a close counter between two polls.
type Event struct {
	At     time.Time `json:"at"`
	Source string    `json:"source"` // the operations port
	Group  string    `json:"group"`
	Kind   string    `json:"kind"` // "link", "client" or "refused"
	Reason string    `json:"reason"`
	Count  uint64    `json:"count"`
}

// peerKey names one end's counters of a link, per incarnations: a
// restarted server starts its counters again.
type peerKey struct{ server, serverInc, peer, peerInc string }

// poller turns successive polls into States. It is used by one goroutine
// at a time.
type poller struct {
	sys      *config.System
	lastAt   time.Time
	links    map[peerKey]uint64             // messages in+out at lastAt
	closes   map[string]map[closeKey]uint64 // by target, at lastAt
	byTarget map[string][]string            // server IDs each target reported last
	seen     map[string]seenServer          // every server on the page
	events   []Event
}

type seenServer struct {
	group string
	at    time.Time // last mentioned by any source
}

func newPoller(sys *config.System) *poller {
	return &poller{sys: sys, links: map[peerKey]uint64{}, closes: map[string]map[closeKey]uint64{},
		byTarget: map[string][]string{}, seen: map[string]seenServer{}}
}

func (p *poller) empty(now time.Time) State {
	st := State{System: p.sys.System, At: now, Servers: []ServerState{}, Links: []LinkState{}, Events: []Event{}, Errors: []string{}}
	for _, g := range p.sys.Groups {
		st.Groups = append(st.Groups, GroupState{Name: g.Name, External: g.Visibility == config.External, Replicas: g.Replicas})
	}
	return st
}

// view is the servers and links one poll found.
type view struct {
	servers   map[string]*ServerState
	links     map[[2]string]*LinkState // by sorted pair of IDs
	peerGroup map[string]string        // the group of each peer reported
}

// update folds one poll into a new State. members is the registry's view;
// haveRegistry tells an empty registry from none.
func (p *poller) update(now time.Time, results []result, members []registry.Member, haveRegistry bool) State {
	st := p.empty(now)
	secs := now.Sub(p.lastAt).Seconds()
	first := p.lastAt.IsZero()
	p.lastAt = now

	v := &view{servers: map[string]*ServerState{}, links: map[[2]string]*LinkState{}, peerGroup: map[string]string{}}
	counts := map[peerKey]uint64{}
	for _, r := range results {
		if r.err != nil {
			st.Errors = append(st.Errors, r.target+": "+r.err.Error())
			p.unreachable(now, v, r.target)
			continue
		}
		p.read(v, r, secs, counts)
		p.closeEvents(now, r, first)
	}
	p.links = counts
	p.unreported(now, v, members, haveRegistry)
	p.remember(now, v)
	p.sum(&st, v)
	return st
}

// unreachable marks down the servers target reported last time.
func (p *poller) unreachable(now time.Time, v *view, target string) {
	for _, id := range p.byTarget[target] {
		seen, ok := p.seen[id]
		if _, dup := v.servers[id]; !dup && ok && now.Sub(seen.at) <= goneAfter {
			v.servers[id] = &ServerState{ID: id, Group: seen.group, State: StateDown, Reason: "operations port unreachable"}
		}
	}
}

// read adds the servers and links of r to v, and the link counters to
// counts; rates are the counters' rise over secs since the last poll.
func (p *poller) read(v *view, r result, secs float64, counts map[peerKey]uint64) {
	ids := make([]string, 0, len(r.statuses))
	for _, s := range r.statuses {
		ids = append(ids, s.ID)
		ss := &ServerState{ID: s.ID, Group: s.Group, State: StateReady, Clients: s.Clients}
		switch {
		case s.Draining:
			ss.State, ss.Reason = StateDraining, "moving its players to other servers"
		case !s.Ready:
			ss.State, ss.Reason = StateNotReady, s.NotReady
		}
		v.servers[s.ID] = ss
		for _, peer := range s.Peers {
			k := peerKey{s.ID, s.Incarnation, peer.ID, peer.Incarnation}
			n := peer.MessagesIn + peer.MessagesOut
			counts[k] = n
			rate := 0.0
			if prev, ok := p.links[k]; ok && n >= prev && secs > 0 {
				rate = float64(n-prev) / secs
			}
			ss.Rate += rate
			pair := [2]string{s.ID, peer.ID}
			if pair[1] < pair[0] {
				pair[0], pair[1] = pair[1], pair[0]
			}
			l := v.links[pair]
			if l == nil {
				l = &LinkState{A: pair[0], B: pair[1], Linked: peer.Linked, State: peer.State}
				v.links[pair] = l
			} else if !peer.Linked {
				l.Linked, l.State = false, peer.State
			}
			l.Rate = max(l.Rate, rate)
			v.peerGroup[peer.ID] = peer.Group
		}
	}
	p.byTarget[r.target] = ids
}

// unreported adds the servers no port reported: from the registry, from
// their peers' links, or remembered from earlier polls (as down).
func (p *poller) unreported(now time.Time, v *view, members []registry.Member, haveRegistry bool) {
	linkedWith := map[string]bool{}
	for _, l := range v.links {
		if l.Linked {
			linkedWith[l.A], linkedWith[l.B] = true, true
		}
	}
	for _, m := range members {
		if _, ok := v.servers[m.ID]; !ok {
			v.servers[m.ID] = &ServerState{ID: m.ID, Group: m.Group, State: StateUnmonitored, Reason: "registered; no operations port known"}
		}
	}
	for id := range linkedWith {
		if _, ok := v.servers[id]; !ok {
			v.servers[id] = &ServerState{ID: id, Group: v.peerGroup[id], State: StateUnmonitored, Reason: "linked with its peers; no operations port known"}
		}
	}
	for id, s := range p.seen {
		if _, ok := v.servers[id]; ok || now.Sub(s.at) > goneAfter {
			continue
		}
		reason := "no longer reported"
		if haveRegistry {
			reason = "left the registry; no peer links with it"
		}
		v.servers[id] = &ServerState{ID: id, Group: s.group, State: StateDown, Reason: reason}
	}
}

// remember notes when each server was last up, and forgets those down
// for longer than goneAfter.
func (p *poller) remember(now time.Time, v *view) {
	for id, s := range v.servers {
		prev, ok := p.seen[id]
		if s.Group != "" {
			prev.group = s.Group
		}
		if s.State != StateDown || !ok {
			prev.at = now
		}
		p.seen[id] = prev
	}
	for id, s := range p.seen {
		if now.Sub(s.at) > goneAfter {
			delete(p.seen, id)
		}
	}
}

// sum puts v's servers and links into st, sorted, with each group's
// figures, and the recent closes.
func (p *poller) sum(st *State, v *view) {
	byGroup := map[string]*GroupState{}
	for i := range st.Groups {
		byGroup[st.Groups[i].Name] = &st.Groups[i]
	}
	for _, s := range v.servers {
		st.Servers = append(st.Servers, *s)
		g := byGroup[s.Group]
		if g == nil {
			continue
		}
		g.Servers++
		if s.State == StateReady {
			g.Ready++
		}
		if s.Clients != nil {
			g.Clients += *s.Clients
		}
		g.Rate += s.Rate
	}
	slices.SortFunc(st.Servers, func(a, b ServerState) int { return compareIDs(a.ID, b.ID) })
	for _, l := range v.links {
		st.Links = append(st.Links, *l)
	}
	slices.SortFunc(st.Links, func(a, b LinkState) int {
		if c := compareIDs(a.A, b.A); c != 0 {
			return c
		}
		return compareIDs(a.B, b.B)
	})
	st.Events = append(st.Events, p.events...)
}

// closeEvents records the rises of r's close counters since the last poll;
// the first poll of a target only sets its baseline.
func (p *poller) closeEvents(now time.Time, r result, first bool) {
	prev, known := p.closes[r.target]
	p.closes[r.target] = r.closes
	if !known || first {
		return
	}
	var fresh []Event
	for k, n := range r.closes {
		if old := prev[k]; n > old {
			fresh = append(fresh, Event{At: now, Source: r.target, Group: k.group, Kind: k.kind, Reason: k.reason, Count: n - old})
		}
	}
	slices.SortFunc(fresh, func(a, b Event) int { return compareIDs(a.Group+a.Kind+a.Reason, b.Group+b.Kind+b.Reason) })
	p.events = append(fresh, p.events...)
	if len(p.events) > maxEvents {
		p.events = p.events[:maxEvents]
	}
}

// compareIDs orders IDs naturally: "front-2" before "front-10".
func compareIDs(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := a[:da], b[:db]
			if len(na) != len(nb) {
				return len(na) - len(nb)
			}
			if na != nb {
				if na < nb {
					return -1
				}
				return 1
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
