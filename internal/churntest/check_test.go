package churntest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol"
)

// The checker flags what it must and nothing else, on answers made up
// here: a short Get without Partial, a Partial Get missing a key of a
// reachable owner, a false Deleted, a failed Get, a dropped client of a
// surviving server; and it excuses an uploader that was disconnecting.
func TestCheckerFlags(t *testing.T) {
	c := NewChecker()
	a, b := protocol.ClientRef{Server: "front-1", ID: 1}, protocol.ClientRef{Server: "front-1", ID: 2}
	k1, k2 := cloud.Key{Primary: "k1"}, cloud.Key{Primary: "k2"}
	keys := []cloud.Key{k1, k2}
	for _, u := range []protocol.ClientRef{a, b} {
		c.addUploader(u, "front-1")
		c.posting(u, k1, 1)
		c.posted(u, k1, 1, postConfirmed)
	}
	row := func(u protocol.ClientRef, k cloud.Key, v string) cloud.Row {
		return cloud.Row{Key: k, Uploader: u, Data: []byte(v)}
	}
	full := &cloud.Result{Rows: []cloud.Row{row(a, k1, "1"), row(b, k1, "1")}}
	c.checkGet(time.Now(), c.expect(keys), keys, full, nil)
	if p := c.Settled(keys, full); p != "" {
		t.Errorf("settled state refused: %s", p)
	}

	short := &cloud.Result{Rows: []cloud.Row{row(a, k1, "1")}}
	c.checkGet(time.Now(), c.expect(keys), keys, short, nil)
	if p := c.Settled(keys, short); !strings.Contains(p, "missing") {
		t.Errorf("Settled of a short Get: %q", p)
	}
	c.checkGet(time.Now(), c.expect(keys), keys, &cloud.Result{Partial: true, Missing: []cloud.Key{k1}}, nil)
	c.checkGet(time.Now(), c.expect(keys), keys, nil, errors.New("unavailable"))
	c.checkNote(cloud.Notification{Type: cloud.NotifyDeleted, Key: k1, Row: row(b, k1, "1")})
	c.ended(c.connected("reader", "front-2"), false, errors.New("reset"))

	// a's connection ends now: the short Get's lack of a row of b stays
	// a violation; a Deleted of a's row would not be.
	c.checkNote(cloud.Notification{Type: cloud.NotifyDeleted, Key: k1, Row: row(a, k1, "1")})
	c.endUploader(a)
	for i := range c.pending { // as if Margin had passed since
		c.pending[i].at = c.pending[i].at.Add(-2 * Margin)
	}
	c.ups[a].ended = c.ups[a].ended.Add(-2 * Margin)
	vs := strings.Join(c.Violations(), "\n")
	for _, want := range []string{
		"Get without Partial lacks the row k1/0 of " + b.String(),
		"Partial Get missed 1 keys whose owners were reachable",
		"Get failed (unavailable)",
		"false Deleted of the row k1/0 of " + b.String(),
		"a reader connected to front-2, a surviving server, was disconnected",
	} {
		if !strings.Contains(vs, want) {
			t.Errorf("no violation %q among:\n%s", want, vs)
		}
	}
	if strings.Contains(vs, "false Deleted of the row k1/0 of "+a.String()) {
		t.Errorf("a Deleted of a disconnecting uploader's row was flagged:\n%s", vs)
	}

	// The same Partial Get is fine when the key's owner was the one
	// the event took away.
	c2 := NewChecker()
	c2.AllowMissing(func(k cloud.Key) bool { return k == k1 })
	c2.checkGet(time.Now(), nil, keys, &cloud.Result{Partial: true, Missing: []cloud.Key{k1}}, nil)
	if vs := c2.Violations(); len(vs) != 0 {
		t.Errorf("a Partial Get missing an allowed key was flagged: %v", vs)
	}
}
