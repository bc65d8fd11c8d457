package cloudmemory

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/plugins/extension"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
	"github.com/cloudrift/cloudrift/rendezvous"
)

// fakeHost is the part of extension.Host a Service uses.
type fakeHost struct {
	extension.Host
	id  string
	log zerolog.Logger
}

func (h *fakeHost) ServerID() string                      { return h.id }
func (h *fakeHost) Logger() *zerolog.Logger               { return &h.log }
func (h *fakeHost) MaxFramePayload() int                  { return protocol.DefaultMaxFrame - 3 }
func (h *fakeHost) FilterCloud(op *plugins.CloudOp) error { return nil }
func (h *fakeHost) FiltersCloud() bool                    { return false }

// SendFrame records the frame at its fakeRemote.
func (h *fakeHost) SendFrame(to plugins.RemoteServer, kind protocol.Kind, tag uint16, p []byte) error {
	r := to.(*fakeRemote)
	r.mu.Lock()
	r.got = append(r.got, protocol.Frame{Kind: kind, Tag: tag, Payload: append([]byte(nil), p...)})
	r.mu.Unlock()
	return nil
}

// fakeRemote is a downstream server; fakeHost records what it is sent.
type fakeRemote struct {
	plugins.RemoteServer
	id  string
	inc uint64
	mu  sync.Mutex
	got []protocol.Frame
}

func (r *fakeRemote) ID() string                   { return r.id }
func (r *fakeRemote) Incarnation() uint64          { return r.inc }
func (r *fakeRemote) Direction() plugins.Direction { return plugins.Downstream }

func (r *fakeRemote) frames(kind protocol.Kind) []protocol.Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []protocol.Frame
	for _, f := range r.got {
		if f.Kind == kind {
			out = append(out, f)
		}
	}
	return out
}

func startService(t *testing.T, grace time.Duration) *Service {
	t.Helper()
	s := &Service{Config: Config{ServerGrace: config.Duration(grace)}}
	if err := s.Start(context.Background(), &fakeHost{id: "cloud-1", log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s
}

func servicePost(t *testing.T, s *Service, from *fakeRemote, k key, up ref, data string) cloudwire.SrvReply {
	t.Helper()
	m := cloudwire.SrvPost{Req: 1, Key: k, Uploader: up, Data: []byte(data)}
	if err := s.ServerFrame(from, protocol.Frame{Kind: protocol.KindCloudSrvPost, Payload: m.AppendTo(nil)}); err != nil {
		t.Fatal(err)
	}
	fs := from.frames(protocol.KindCloudSrvReply)
	var r cloudwire.SrvReply
	if err := r.Decode(fs[len(fs)-1].Payload); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestServiceGrace(t *testing.T) {
	s := startService(t, 100*time.Millisecond)
	k := key{Primary: "g", Secondary: 1}
	e1 := &fakeRemote{id: "e1", inc: 7}
	if r := servicePost(t, s, e1, k, ref{Server: "e1", ID: 1}, "x"); r.Code != cloud.CodeUnavailable {
		t.Fatalf("before membership: %v", r.Code)
	}
	s.PeersChanged([]extension.Peer{{ID: "cloud-1"}})
	s.ServerConnected(e1)
	if r := servicePost(t, s, e1, k, ref{Server: "e2", ID: 1}, "x"); r.Code != cloud.CodeBadRequest {
		t.Fatalf("posting for another server's client: %v", r.Code)
	}
	if r := servicePost(t, s, e1, k, ref{Server: "e1", ID: 1}, "x"); r.Code != cloud.CodeOK {
		t.Fatalf("post: %v %s", r.Code, r.Message)
	}
	rows := func() int { _, n, _ := s.Stats(); return n }

	// A link that comes back within the grace keeps the rows.
	s.ServerDisconnected(e1, nil)
	s.ServerConnected(e1)
	time.Sleep(200 * time.Millisecond)
	if rows() != 1 {
		t.Fatal("rows dropped although the server came back in time")
	}
	// One that does not loses them.
	s.ServerDisconnected(e1, nil)
	testutil.WaitFor(t, "rows deleted after the grace", func() bool { return rows() == 0 })

	// A new incarnation replaces the old one's rows at once.
	servicePost(t, s, e1, k, ref{Server: "e1", ID: 1}, "y")
	s.ServerConnected(e1)
	servicePost(t, s, e1, k, ref{Server: "e1", ID: 2}, "y")
	e1b := &fakeRemote{id: "e1", inc: 8}
	s.ServerConnected(e1b)
	if rows() != 0 {
		t.Fatalf("%d rows of the old incarnation left", rows())
	}
	// The old incarnation's late events change nothing for the new one.
	servicePost(t, s, e1b, k, ref{Server: "e1", ID: 3}, "z")
	s.ServerDisconnected(e1, nil)
	s.ServerLeft(e1)
	if rows() != 1 {
		t.Fatal("the old incarnation's leave dropped the new one's rows")
	}
}

func TestServiceHandsKeysOver(t *testing.T) {
	s := startService(t, time.Second)
	s.PeersChanged([]extension.Peer{{ID: "cloud-1"}})
	e1 := &fakeRemote{id: "e1", inc: 1}
	s.ServerConnected(e1)
	var keys []key
	for i := range 30 {
		k := key{Primary: "h", Secondary: uint32(i)}
		keys = append(keys, k)
		servicePost(t, s, e1, k, ref{Server: "e1"}, "v")
	}
	sub := cloudwire.SrvSub{Mode: cloudwire.SubAll, Keys: keys}
	if err := s.ServerFrame(e1, protocol.Frame{Kind: protocol.KindCloudSrvSub, Payload: sub.AppendTo(nil)}); err != nil {
		t.Fatal(err)
	}
	s.PeersChanged([]extension.Peer{{ID: "cloud-1"}, {ID: "cloud-2"}})
	r := rendezvous.NewRing([]string{"cloud-1", "cloud-2"})
	var movedWant int
	for _, k := range keys {
		if ownerOf(r, k) == "cloud-2" {
			movedWant++
		}
	}
	var moved []key
	for _, f := range e1.frames(protocol.KindCloudSrvMoved) {
		var m cloudwire.SrvMoved
		if err := m.Decode(f.Payload); err != nil {
			t.Fatal(err)
		}
		moved = append(moved, m.Keys...)
	}
	if movedWant == 0 || len(moved) != movedWant {
		t.Fatalf("moved %d keys, want %d", len(moved), movedWant)
	}
	for _, k := range moved {
		if ownerOf(r, k) != "cloud-2" {
			t.Fatalf("%s moved but still owned here", k)
		}
	}
	keysLeft, rowsLeft, subsLeft := s.Stats()
	if rowsLeft != 30-movedWant || keysLeft != rowsLeft || subsLeft != rowsLeft {
		t.Fatalf("left %d keys %d rows %d subscriptions", keysLeft, rowsLeft, subsLeft)
	}
	// A post for a moved key is refused.
	if rep := servicePost(t, s, e1, moved[0], ref{Server: "e1"}, "v"); rep.Code != cloud.CodeNotOwner {
		t.Fatalf("post to a moved key: %v", rep.Code)
	}
}

// serviceGet reads keys from s as from, and returns the replica's answer.
func serviceGet(t *testing.T, s *Service, from *fakeRemote, keys []key) cloudwire.SrvResult {
	t.Helper()
	m := cloudwire.SrvGet{Req: 9, Asker: ref{Server: from.id}, Keys: keys}
	if err := s.ServerFrame(from, protocol.Frame{Kind: protocol.KindCloudSrvGet, Payload: m.AppendTo(nil)}); err != nil {
		t.Fatal(err)
	}
	fs := from.frames(protocol.KindCloudSrvResult)
	var res cloudwire.SrvResult
	if err := res.Decode(fs[len(fs)-1].Payload); err != nil {
		t.Fatal(err)
	}
	return res
}

// confirm sends s from's SyncRing for the replica set ids.
func confirm(t *testing.T, s *Service, from *fakeRemote, ids ...string) {
	t.Helper()
	m := cloudwire.SrvSync{Op: cloudwire.SyncRing, Ring: cloudwire.RingDigest(ids)}
	if err := s.ServerFrame(from, protocol.Frame{Kind: protocol.KindCloudSrvSync, Payload: m.AppendTo(nil)}); err != nil {
		t.Fatal(err)
	}
}

// refusedKeys returns the keys res refused with code.
func refusedKeys(res cloudwire.SrvResult, keys []key, code cloud.Code) []key {
	var out []key
	for _, r := range res.Refused {
		if r.Code == code {
			out = append(out, keys[r.Index])
		}
	}
	return out
}

func TestServiceServesTakenOverKeysOnceConfirmed(t *testing.T) {
	s := startService(t, time.Minute)
	e1, e2 := &fakeRemote{id: "e1", inc: 1}, &fakeRemote{id: "e2", inc: 1}
	s.ServerConnected(e1)
	s.ServerJoined(e2) // a member not linked yet: it must confirm too
	var keys []key
	for i := range 24 {
		keys = append(keys, key{Primary: "t", Secondary: uint32(i)})
	}
	both := rendezvous.NewRing([]string{"cloud-1", "cloud-2"})
	var mine, theirs []key
	for _, k := range keys {
		if ownerOf(both, k) == "cloud-1" {
			mine = append(mine, k)
		} else {
			theirs = append(theirs, k)
		}
	}
	if len(mine) == 0 || len(theirs) == 0 {
		t.Fatal("the keys do not spread over two replicas")
	}
	// A fresh replica serves nothing before every member confirmed.
	s.PeersChanged([]extension.Peer{{ID: "cloud-1"}, {ID: "cloud-2"}})
	for _, k := range mine {
		if rep := servicePost(t, s, e1, k, ref{Server: "e1"}, "v"); rep.Code != cloud.CodeOK {
			t.Fatalf("post %s: %v", k, rep.Code)
		}
	}
	if res := serviceGet(t, s, e1, mine); len(refusedKeys(res, mine, cloud.CodeUnavailable)) != len(mine) {
		t.Fatalf("fresh replica refused %v", res.Refused)
	}
	confirm(t, s, e1, "cloud-1", "cloud-2")
	if res := serviceGet(t, s, e1, mine); len(res.Refused) != len(mine) {
		t.Fatal("served before the unlinked member confirmed")
	}
	confirm(t, s, e2, "cloud-1", "cloud-2")
	// A mixed read: its own keys are answered, the others refused one
	// by one.
	res := serviceGet(t, s, e1, keys)
	if got := refusedKeys(res, keys, cloud.CodeNotOwner); fmt.Sprint(got) != fmt.Sprint(theirs) || len(res.Refused) != len(theirs) {
		t.Fatalf("refused %v, want %v as not owner", res.Refused, theirs)
	}
	if len(res.Rows) != len(mine) || len(res.Counts) != len(keys) {
		t.Fatalf("%d rows and %d counts for %d keys of its own", len(res.Rows), len(res.Counts), len(mine))
	}
	// cloud-2 goes: its keys are refused until both members confirm the
	// new set; the keys it kept are served throughout.
	s.PeersChanged([]extension.Peer{{ID: "cloud-1"}})
	for _, e := range []*fakeRemote{e1} {
		if fs := e.frames(protocol.KindCloudSrvMoved); len(fs) == 0 {
			t.Fatal("the linked server was not asked to confirm again")
		}
	}
	res = serviceGet(t, s, e1, keys)
	if got := refusedKeys(res, keys, cloud.CodeUnavailable); fmt.Sprint(got) != fmt.Sprint(theirs) || len(res.Refused) != len(theirs) {
		t.Fatalf("after cloud-2 left: refused %v, want %v as unavailable", res.Refused, theirs)
	}
	confirm(t, s, e1, "cloud-1")
	confirm(t, s, e2, "cloud-1", "cloud-2") // a stale set confirms nothing
	if res := serviceGet(t, s, e1, keys); len(res.Refused) != len(theirs) {
		t.Fatalf("served after a stale confirmation: refused %v", res.Refused)
	}
	s.ServerLeft(e2) // no longer a member: not waited for
	if res := serviceGet(t, s, e1, keys); len(res.Refused) != 0 {
		t.Fatalf("settled, still refused %v", res.Refused)
	}
	// cloud-2 comes and goes before anyone confirmed: its keys were
	// dropped here meanwhile, so they are not served on the old set's
	// say-so.
	s.PeersChanged([]extension.Peer{{ID: "cloud-1"}, {ID: "cloud-2"}})
	s.PeersChanged([]extension.Peer{{ID: "cloud-1"}})
	if res := serviceGet(t, s, e1, keys); fmt.Sprint(refusedKeys(res, keys, cloud.CodeUnavailable)) != fmt.Sprint(theirs) {
		t.Fatalf("after a flip: refused %v, want %v", res.Refused, theirs)
	}
	confirm(t, s, e1, "cloud-1")
	if res := serviceGet(t, s, e1, keys); len(res.Refused) != 0 {
		t.Fatalf("confirmed, still refused %v", res.Refused)
	}
}

func TestServiceDeletesRowsOnlyOnGracefulLeave(t *testing.T) {
	s := startService(t, time.Minute)
	s.PeersChanged([]extension.Peer{{ID: "cloud-1"}})
	rows := func() int { _, n, _ := s.Stats(); return n }
	k := key{Primary: "bye", Secondary: 1}
	e1 := &fakeRemote{id: "e1", inc: 1}
	s.ServerConnected(e1)
	servicePost(t, s, e1, k, ref{Server: "e1", ID: 1}, "x")
	// A broken link, then the server leaves the registry: the grace
	// runs on.
	s.ServerDisconnected(e1, &plugins.CloseError{Reason: protocol.ReasonIO, Message: "read failed"})
	s.ServerLeft(e1)
	if rows() != 1 {
		t.Fatal("a server that left after its link broke lost its rows before the grace")
	}
	// A link closed by the peer for its shutdown: gone at once.
	e2 := &fakeRemote{id: "e2", inc: 1}
	s.ServerConnected(e2)
	servicePost(t, s, e2, k, ref{Server: "e2", ID: 1}, "y")
	s.ServerDisconnected(e2, &plugins.CloseError{Reason: protocol.ReasonShutdown, ByPeer: true, Message: "server shutting down"})
	if rows() != 1 {
		t.Fatalf("%d rows after a graceful leave, want 1", rows())
	}
	// This server closing the link for its own shutdown says nothing
	// about the peer.
	e3 := &fakeRemote{id: "e3", inc: 1}
	s.ServerConnected(e3)
	servicePost(t, s, e3, k, ref{Server: "e3", ID: 1}, "z")
	s.ServerDisconnected(e3, &plugins.CloseError{Reason: protocol.ReasonShutdown, Message: "server closed"})
	if rows() != 2 {
		t.Fatalf("%d rows, want 2", rows())
	}
}

func TestServiceFreshReplicaWaitsForItsFirstServer(t *testing.T) {
	s := startService(t, time.Minute)
	s.PeersChanged([]extension.Peer{{ID: "cloud-1"}})
	e1 := &fakeRemote{id: "e1", inc: 1}
	k := []key{{Primary: "fresh", Secondary: 1}}
	// No downstream server known yet: its lists may not have arrived.
	if res := serviceGet(t, s, e1, k); len(refusedKeys(res, k, cloud.CodeUnavailable)) != 1 {
		t.Fatalf("served with no server known: %+v", res)
	}
	s.ServerConnected(e1)
	confirm(t, s, e1, "cloud-1")
	if res := serviceGet(t, s, e1, k); len(res.Refused) != 0 || len(res.Counts) != 1 {
		t.Fatalf("after the first confirmation: %+v", res)
	}
}
