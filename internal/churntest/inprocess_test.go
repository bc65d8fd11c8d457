package churntest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/protocol"

	_ "github.com/cloudrift/cloudrift/plugins/cloudmemory" // the cloud group's plugin
)

// inProcessSystem: two external servers for the game clients, three
// cloud replicas, every server in this process (package clustertest).
// The Get timeout keeps its default (2s): a loaded machine running the
// whole test suite must not make a reachable owner look unreachable.
const inProcessSystem = `
system: churn
secret: churn-secret-of-sufficient-length
links:
  heartbeat: 250ms
  timeout: 3s
groups:
  - name: front
    visibility: external
    connectsTo: [cloud]
    replicas: 2
    clients: {path: /, rate: 1000}
  - name: cloud
    visibility: internal
    replicas: 3
    plugins:
      - name: cloudmemory
        settings: {serverGrace: 1s} # getTimeout: the default, 2s
`

// inProcess is a scenario's system in this process, with its load.
type inProcess struct {
	t     *testing.T
	sys   *clustertest.System
	check *Checker
	load  *Load
}

func startInProcess(t *testing.T, cfg LoadConfig) *inProcess {
	sys := clustertest.Start(t, inProcessSystem)
	var entries []Entry
	for _, id := range []string{"front-1", "front-2"} {
		entries = append(entries, Entry{ID: id, URL: sys.Server(id).URL()})
	}
	check := NewChecker()
	load := NewLoad(cfg, check, func() []Entry { return entries })
	return &inProcess{t: t, sys: sys, check: check, load: load}
}

func (p *inProcess) run(sc scenario, peerLeftOK ...string) {
	p.t.Helper()
	runScenario(p.t, "in process", p.load, p.check, sc, func(time.Time) []string {
		return peerLeftClosures(p.sys.Logs(), peerLeftOK)
	})
}

// peerLeftClosures returns the "link down" lines of logs (zerolog JSON)
// whose reason is that the registry no longer lists the peer, but for
// links to or from the servers in ok.
func peerLeftClosures(logs string, ok []string) []string {
	var out []string
	s := bufio.NewScanner(strings.NewReader(logs))
	s.Buffer(make([]byte, 64<<10), 4<<20)
	for s.Scan() {
		var l struct {
			Message, Reason, Server, Peer, Time string
		}
		if json.Unmarshal(s.Bytes(), &l) != nil || l.Message != "link down" || l.Reason != protocol.ReasonPeerLeft.String() {
			continue
		}
		if slices.Contains(ok, l.Server) || slices.Contains(ok, l.Peer) {
			continue
		}
		out = append(out, fmt.Sprintf("%s -> %s at %s", l.Server, l.Peer, l.Time))
	}
	return out
}

var replicas3 = []string{"cloud-1", "cloud-2", "cloud-3"}

// heavyReads is the load of the events where a replica takes keys over:
// more rows to hand over, more readers, shorter pauses.
var heavyReads = LoadConfig{Readers: 4, RowsEach: 8, Interval: 25 * time.Millisecond}

// The load alone: the baseline of the figures.
func TestInProcessNoEvent(t *testing.T) {
	p := startInProcess(t, LoadConfig{})
	p.run(scenario{name: "no event"})
}

// A fourth, then a fifth cloud replica joins: the keys each wins move to
// it; only those may be missing from a Partial Get. Two joins give the
// readers two chances at the moment a new owner takes its keys over.
func TestReplicaJoin(t *testing.T) {
	// More rows to hand over and more readers: the moment a new owner
	// serves a key before its rows arrived is short.
	p := startInProcess(t, heavyReads)
	four := append(append([]string{}, replicas3...), "cloud-4")
	five := append(append([]string{}, four...), "cloud-5")
	keys := p.load.Keys()
	joined4, joined5 := OwnedBy("cloud-4", replicas3, four, keys), OwnedBy("cloud-5", four, five, keys)
	p.check.AllowMissing(func(k cloud.Key) bool { return joined4(k) || joined5(k) })
	p.run(scenario{name: "cloud replica join (two, 2s apart)", event: func() {
		p.sys.AddReplica("cloud")
		time.Sleep(2 * time.Second)
		p.sys.AddReplica("cloud")
	}})
}

// A cloud replica shuts down gracefully, then a second one 2s later: the
// keys of each move to the others; only those may be missing from a
// Partial Get. Two leaves give the readers two chances at the moment a
// new owner takes keys over.
func TestReplicaLeave(t *testing.T) {
	p := startInProcess(t, heavyReads)
	keys := p.load.Keys()
	left3 := OwnedBy("cloud-3", replicas3, replicas3[:2], keys)
	left2 := OwnedBy("cloud-2", replicas3[:2], replicas3[:1], keys)
	p.check.AllowMissing(func(k cloud.Key) bool { return left3(k) || left2(k) })
	p.run(scenario{name: "graceful replica leave (two, 2s apart)", event: func() {
		p.sys.Server("cloud-3").Shutdown()
		time.Sleep(2 * time.Second)
		p.sys.Server("cloud-2").Shutdown()
	}}, "cloud-3", "cloud-2")
}

// The registry flaps to empty (every watch sees no member) and back,
// while every server runs: no link closes, no key is missing. The short
// blackout is the blip a restarting registry agent makes, within the
// links' leaveGrace (5s by default); the long one outlasts it, and the
// live links must still outrank the registry.
func TestRegistryFlap(t *testing.T) {
	for _, d := range []time.Duration{2 * time.Second, 7 * time.Second} {
		t.Run(d.String(), func(t *testing.T) {
			p := startInProcess(t, LoadConfig{})
			p.run(scenario{name: fmt.Sprintf("registry flap to empty for %v", d), event: func() {
				<-p.sys.Hub().Blackout(d)
			}})
		})
	}
}
