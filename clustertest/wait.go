package clustertest

import (
	"fmt"
	"strings"
	"time"

	"github.com/cloudrift/cloudrift/plugins"
)

// pollEvery is how often a wait checks its condition.
const pollEvery = 5 * time.Millisecond

// WaitFor polls cond until it holds, and fails the test with
// "clustertest: timed out after <patience> waiting for <what>" if it does
// not within the system's patience. cond runs on the caller's goroutine.
func (s *System) WaitFor(what string, cond func() bool) {
	s.t.Helper()
	s.waitFor(what, cond, nil)
}

// waitFor is WaitFor with detail, when non-nil, telling at the timeout
// what is still missing.
func (s *System) waitFor(what string, cond func() bool, detail func() string) {
	s.t.Helper()
	deadline := time.Now().Add(s.opts.patience)
	for !cond() {
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("clustertest: timed out after %v waiting for %s", s.opts.patience, what)
			if detail != nil {
				msg += " (" + detail() + ")"
			}
			s.t.Fatalf("%s", msg)
		}
		time.Sleep(pollEvery)
	}
}

// WaitLinked waits until every running server of group has a link up with
// the current incarnation of every server that the registry lists in each
// group it connects to. A group that connects to nothing is linked at
// once. On timeout the message names the links still down.
func (s *System) WaitLinked(group string) {
	s.t.Helper()
	s.group(group)
	s.waitFor(fmt.Sprintf("every server of %s linked to every server of %s", group, s.upstreamNames(group)),
		func() bool { return len(s.missingLinks(group)) == 0 },
		func() string { return "not linked: " + strings.Join(s.missingLinks(group), ", ") })
}

// WaitLinkedServer waits until the server id has a link up with every
// server the registry lists in each group its group connects to.
func (s *System) WaitLinkedServer(id string) {
	s.t.Helper()
	srv := s.Server(id)
	s.waitFor(fmt.Sprintf("%s linked to every server of %s", id, s.upstreamNames(srv.group)),
		func() bool { return len(s.missingFrom(srv)) == 0 },
		func() string { return "not linked: " + strings.Join(s.missingFrom(srv), ", ") })
}

func (s *System) upstreamNames(group string) string {
	up := s.topo.Upstream(group)
	if len(up) == 0 {
		return "no group"
	}
	return strings.Join(up, " and ")
}

// missingLinks lists, as "from→to", the links of group's running servers
// that are not up.
func (s *System) missingLinks(group string) []string {
	var out []string
	for _, srv := range s.Servers(group) {
		out = append(out, s.missingFrom(srv)...)
	}
	return out
}

// missingFrom lists the upstream links of srv that are not up; a server
// that is not running has none.
func (s *System) missingFrom(srv *Server) []string {
	if !srv.Running() {
		return nil
	}
	host := srv.Host()
	var out []string
	for _, up := range s.topo.Upstream(srv.group) {
		rg, err := host.RemoteGroup(up)
		for _, m := range s.hub.Members(up) {
			if err == nil {
				r, ok := rg.Server(m.ID)
				if ok && r.Incarnation() == m.Incarnation && r.State() == plugins.StateConnected {
					continue
				}
			}
			out = append(out, srv.id+"→"+m.ID)
		}
	}
	return out
}
