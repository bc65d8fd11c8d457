package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/clustertest"

	_ "github.com/cloudrift/cloudrift/plugins/cloudmemory" // the cloud group's plugin
)

// rowsSystem is a small system in one process for the uploaders: two
// client servers and two cloud replicas.
const rowsSystem = `
system: chaos-rows
secret: chaos-rows-secret-of-enough-length
groups:
  - name: client
    visibility: external
    connectsTo: [cloud]
    replicas: 2
    clients: {path: /}
  - name: cloud
    visibility: internal
    replicas: 2
    plugins: [{name: cloudmemory}]
`

// waitRows waits until the rows check passes and fails the test with the
// last problem when it does not within bound.
func waitRows(t *testing.T, f *fleet, bound time.Duration) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		rc := f.checkRows(context.Background())
		if rc.problem == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows not consistent within %v: %s", bound, rc.problem)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRowsCheck runs uploaders against real client servers and cloud
// replicas: the check passes once they are up, finds a row an uploader
// holds to but the cloud memory lacks, and passes again after a client
// server is killed and its uploaders came back through the other, whose
// own uploaders were never dropped.
func TestRowsCheck(t *testing.T) {
	sys := clustertest.Start(t, rowsSystem)
	sys.WaitLinked("client")
	one, two := sys.Server("client-1"), sys.Server("client-2")
	f := &fleet{}
	f.setURLs([]string{one.URL(), two.URL()})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	f.runUploaders(ctx, &wg, 4)
	waitRows(t, f, 30*time.Second)

	lost := cloud.Key{Primary: "never-posted"}
	u := f.uploaders[0]
	u.mu.Lock()
	u.latest[lost] = "a value"
	u.mu.Unlock()
	rc := f.checkRows(ctx)
	if rc.lost != len(f.uploaders) || !strings.Contains(rc.problem, "never-posted/0=a value 0 times") {
		t.Fatalf("a row missing from the cloud memory: lost %d, want one per Get (%d); problem %q", rc.lost, len(f.uploaders), rc.problem)
	}
	u.mu.Lock()
	delete(u.latest, lost)
	u.mu.Unlock()

	ev := &eventStats{name: "kill client-1"}
	f.begin(ev, one.URL())
	one.Kill()
	f.setURLs([]string{two.URL()})
	waitRows(t, f, 30*time.Second)
	f.mu.Lock()
	defer f.mu.Unlock()
	if ev.drops != 0 || ev.hitDrops != 2 || len(ev.back) != 2 {
		t.Errorf("dropped %d (%v), of client-1 %d, back %v; want 0, 2 dropped and back", ev.drops, ev.dropEvidence, ev.hitDrops, ev.back)
	}
}
