package cloudloop

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/cloud"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestPushWakesAndTakeEmpties(t *testing.T) {
	var l Loop
	l.Push(cloud.Notification{Key: cloud.Key{Primary: "a"}}) // before Start: queued
	got := make(chan []cloud.Notification, 1)
	l.Start(func() {
		<-l.Wake()
		got <- l.Take()
		<-l.Stopped()
	})
	select {
	case q := <-got:
		if len(q) != 1 || q[0].Key.Primary != "a" {
			t.Fatalf("took %v", q)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the loop was not woken")
	}
	if q := l.Take(); len(q) != 0 {
		t.Fatalf("queue after Take: %v", q)
	}
	ctx, cancel := l.Op()
	defer cancel()
	l.Stop() // returns once run has
	if !l.Stopping() || ctx.Err() == nil {
		t.Fatal("Stop did not end the loop's operations")
	}
}

func TestStopNeverStarted(t *testing.T) {
	var l Loop
	l.Stop()
}

func TestSnapshotLeavesOutMissingKeys(t *testing.T) {
	a, b, c := cloud.Key{Primary: "a"}, cloud.Key{Primary: "b"}, cloud.Key{Primary: "c"}
	res := &cloud.Result{
		Rows:    []cloud.Row{{Key: a, Data: []byte("1")}, {Key: a, Data: []byte("2")}, {Key: c}},
		Missing: []cloud.Key{b},
	}
	snap := snapshot(res, []cloud.Key{a, b})
	if len(snap) != 1 || len(snap[a]) != 2 {
		t.Fatalf("snapshot %v, want the two rows of a only", snap)
	}
	if _, ok := snap[b]; ok {
		t.Fatal("a missing key is in the snapshot")
	}
	snap = snapshot(&cloud.Result{}, []cloud.Key{a})
	if rows, ok := snap[a]; !ok || len(rows) != 0 {
		t.Fatalf("a key with no rows: %v, %v", rows, ok)
	}
}
