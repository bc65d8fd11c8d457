package dashboard

import (
	"errors"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/ops"
	"github.com/cloudrift/cloudrift/registry"
)

func testSystem(t *testing.T) *config.System {
	t.Helper()
	sys, err := config.Parse("test.yaml", []byte(`
system: s
secret: a-secret-of-sufficient-length
groups:
  - {name: front, visibility: external, connectsTo: [world]}
  - {name: world, visibility: internal}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	return sys
}

func status(id, group string, ready bool, peers ...ops.PeerStatus) ops.Status {
	s := ops.Status{ID: id, Group: group, Incarnation: "1", Ready: ready, Peers: peers}
	if !ready {
		s.NotReady = "not ready: draining"
	}
	return s
}

func peer(id, group string, msgs uint64) ops.PeerStatus {
	return ops.PeerStatus{ID: id, Group: group, Incarnation: "1", State: "up", Linked: true, MessagesIn: msgs, MessagesOut: msgs}
}

func TestRatesAndClosesAreDeltasBetweenPolls(t *testing.T) {
	p := newPoller(testSystem(t))
	t0 := time.Unix(1000, 0)
	poll := func(at time.Time, frontMsgs, worldMsgs, closes uint64) State {
		return p.update(at, []result{
			{target: "a", statuses: []ops.Status{status("front-1", "front", true, peer("world-1", "world", frontMsgs))},
				closes: map[closeKey]uint64{{"link", "front", "peer_gone"}: closes}},
			{target: "b", statuses: []ops.Status{status("world-1", "world", true, peer("front-1", "front", worldMsgs))}},
		}, nil, false)
	}
	st := poll(t0, 100, 100, 5)
	if len(st.Links) != 1 || st.Links[0].Rate != 0 || len(st.Events) != 0 {
		t.Fatalf("first poll: links %+v events %+v; want one link at 0/s and no event", st.Links, st.Events)
	}
	st = poll(t0.Add(2*time.Second), 200, 150, 7)
	if l := st.Links[0]; l.A != "front-1" || l.B != "world-1" || l.Rate != 100 || !l.Linked {
		t.Errorf("link %+v; want front-1–world-1 linked at 100/s (the busier end)", l)
	}
	if g := st.Groups[0]; g.Name != "front" || g.Rate != 100 || g.Ready != 1 {
		t.Errorf("group %+v; want front at 100/s, 1 ready", g)
	}
	if len(st.Events) != 1 || st.Events[0].Count != 2 || st.Events[0].Reason != "peer_gone" {
		t.Errorf("events %+v; want one of 2 link closes for peer_gone", st.Events)
	}
	// A restarted peer (new incarnation) starts its counters again: no
	// negative rate.
	st = poll(t0.Add(3*time.Second), 10, 10, 7)
	if st.Links[0].Rate < 0 {
		t.Errorf("rate after a counter reset %v, want 0 or more", st.Links[0].Rate)
	}
}

func TestAServerWhosePortFailsIsDownThenForgotten(t *testing.T) {
	p := newPoller(testSystem(t))
	t0 := time.Unix(1000, 0)
	ok := []result{{target: "a", statuses: []ops.Status{status("world-1", "world", true)}}}
	failed := []result{{target: "a", err: errors.New("connection refused")}}
	p.update(t0, ok, nil, false)
	st := p.update(t0.Add(time.Second), failed, nil, false)
	if len(st.Servers) != 1 || st.Servers[0].State != StateDown || len(st.Errors) != 1 {
		t.Fatalf("servers %+v errors %v; want world-1 down and one error", st.Servers, st.Errors)
	}
	st = p.update(t0.Add(time.Second+goneAfter+time.Second), failed, nil, false)
	if len(st.Servers) != 0 {
		t.Errorf("servers %+v after %s; want none", st.Servers, goneAfter)
	}
}

func TestRegisteredServersWithoutPortAreUnmonitoredThenDown(t *testing.T) {
	p := newPoller(testSystem(t))
	t0 := time.Unix(1000, 0)
	members := []registry.Member{{ID: "world-2", Group: "world"}}
	st := p.update(t0, nil, members, true)
	if len(st.Servers) != 1 || st.Servers[0].State != StateUnmonitored {
		t.Fatalf("servers %+v; want world-2 unmonitored", st.Servers)
	}
	st = p.update(t0.Add(time.Second), nil, nil, true)
	if len(st.Servers) != 1 || st.Servers[0].State != StateDown {
		t.Errorf("servers %+v after world-2 left the registry; want it down", st.Servers)
	}
}

func TestParseCloses(t *testing.T) {
	got := parseCloses([]byte(`# HELP cloudrift_link_closes_total Links that went down.
cloudrift_link_closes_total{group="front",reason="peer \"gone\""} 3
cloudrift_client_closes_total{group="front",reason="client_closed"} 2
cloudrift_handshakes_refused_total{group="world",reason="bad_secret"} 1e+00
cloudrift_links_up{group="front",peer_group="world"} 1
`))
	want := map[closeKey]uint64{
		{"link", "front", `peer "gone"`}:     3,
		{"client", "front", "client_closed"}: 2,
		{"refused", "world", "bad_secret"}:   1,
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%v: %d, want %d", k, got[k], v)
		}
	}
}

func TestCompareIDs(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{{"front-2", "front-10", true}, {"front-10", "front-2", false}, {"a-1", "b-1", true}, {"w-1", "w-1x", true}} {
		if got := compareIDs(c.a, c.b) < 0; got != c.less {
			t.Errorf("compareIDs(%q, %q) < 0 = %v, want %v", c.a, c.b, got, c.less)
		}
	}
}

func TestDrainingServerShowsDraining(t *testing.T) {
	p := newPoller(testSystem(t))
	drain := status("front-1", "front", false)
	drain.Draining = true
	st := p.update(time.Unix(1000, 0), []result{
		{target: "a", statuses: []ops.Status{drain, status("world-1", "world", false)}},
	}, nil, false)
	got := map[string]string{}
	for _, s := range st.Servers {
		got[s.ID] = s.State
	}
	if got["front-1"] != StateDraining || got["world-1"] != StateNotReady {
		t.Fatalf("states %v; want front-1 draining, world-1 not ready", got)
	}
}
