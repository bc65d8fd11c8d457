package churntest

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/rendezvous"
)

// Margin is how long after an observation a client may learn that its
// connection had already ended: a row that vanished, or a Deleted that
// arrived, counts against its uploader only if the uploader was still
// connected Margin after it. A dead server's sockets are reset by the
// kernel, so its clients learn of it at once; the margin covers a loaded
// machine's scheduling.
const Margin = 2 * time.Second

// Checker is the model of what the cloud memory must hold, fed by the
// load's clients (uploaders' acknowledged posts, connections that begin
// and end) and checking every answer they get against it (readers' Gets,
// subscribers' notifications). Violations found during the run are kept;
// those that depend on an uploader staying connected are confirmed only
// once the margin after them has passed (Violations). Safe for concurrent
// use.
type Checker struct {
	mu   sync.Mutex
	ups  map[protocol.ClientRef]*uploader
	gets []getRecord
	// pending are observations that are violations unless their uploader
	// ended within Margin after them.
	pending    []pending
	violations []string
	clients    []*clientRecord
	// allowed reports whether a Partial Get may miss key k (its owner was
	// not reachable the whole time); nil: no key may be missed.
	allowed func(k cloud.Key) bool
	// lost holds the servers the event takes down, with when: their
	// clients connected before that may be disconnected.
	lost map[string]time.Time
}

// NewChecker returns an empty model.
func NewChecker() *Checker {
	return &Checker{ups: make(map[protocol.ClientRef]*uploader), lost: make(map[string]time.Time)}
}

// uploader is one connection of an uploading client: its rows live while
// it is connected.
type uploader struct {
	server string
	ended  time.Time // zero while connected
	rows   map[cloud.Key]*rowState
}

// rowState is an uploader's row: seq numbers are the posted values.
type rowState struct {
	acked uint64 // the latest value the cloud memory confirmed
	sent  uint64 // the latest value posted; > acked while unconfirmed
}

type pending struct {
	up  protocol.ClientRef
	at  time.Time
	msg string
}

// getRecord is one reader's Get, for the figures.
type getRecord struct {
	sent, answered time.Time
	partial        bool
	failed         bool
	consistent     bool // complete, every required row with a current value, no row of a gone uploader
}

// clientRecord is one client connection of the load.
type clientRecord struct {
	role, server string
	connected    time.Time
	ended        time.Time
	expected     bool // ended by the load itself
}

// AllowMissing sets which keys a Partial Get may miss; nil: none.
func (c *Checker) AllowMissing(f func(k cloud.Key) bool) {
	c.mu.Lock()
	c.allowed = f
	c.mu.Unlock()
}

// MayLose says that the clients connected so far to server id may be
// disconnected: the event takes it down now. Clients that connect to a
// new server under the same ID later may not.
func (c *Checker) MayLose(id string) {
	c.mu.Lock()
	c.lost[id] = time.Now()
	c.mu.Unlock()
}

func (c *Checker) violate(format string, args ...any) {
	c.violations = append(c.violations, fmt.Sprintf(time.Now().Format("15:04:05.000 ")+format, args...))
}

// connected records a new client connection and returns its record.
func (c *Checker) connected(role, server string) *clientRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &clientRecord{role: role, server: server, connected: time.Now()}
	c.clients = append(c.clients, r)
	return r
}

// ended records that a connection ended; expected when the load closed it.
func (c *Checker) ended(r *clientRecord, expected bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r.ended, r.expected = time.Now(), expected
	if at, lost := c.lost[r.server]; !expected && !(lost && r.connected.Before(at)) {
		c.violate("a %s connected to %s, a surviving server, was disconnected: %v", r.role, r.server, err)
	}
}

// addUploader starts the model of an uploader connection.
func (c *Checker) addUploader(ref protocol.ClientRef, server string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ups[ref] = &uploader{server: server, rows: make(map[cloud.Key]*rowState)}
}

// endUploader records that the uploader's connection ended: its rows must
// go.
func (c *Checker) endUploader(ref protocol.ClientRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u := c.ups[ref]; u != nil && u.ended.IsZero() {
		u.ended = time.Now()
	}
}

// posting records that value seq is being posted under k.
func (c *Checker) posting(ref protocol.ClientRef, k cloud.Key, seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.ups[ref].rows[k]
	if r == nil {
		r = &rowState{}
		c.ups[ref].rows[k] = r
	}
	r.sent = seq
}

// posted records the outcome of posting seq: confirmed, unknown (a
// timeout: the value may still land), or refused (nothing changed).
func (c *Checker) posted(ref protocol.ClientRef, k cloud.Key, seq uint64, outcome postOutcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.ups[ref].rows[k]
	switch outcome {
	case postConfirmed:
		r.acked = seq
	case postRefused:
		r.sent = r.acked
	}
}

type postOutcome int

const (
	postConfirmed postOutcome = iota
	postUnknown
	postRefused
)

// unconfirmed returns the keys whose latest value the uploader posted but
// the cloud memory did not confirm.
func (c *Checker) unconfirmed(ref protocol.ClientRef) []cloud.Key {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []cloud.Key
	for k, r := range c.ups[ref].rows {
		if r.sent != r.acked {
			out = append(out, k)
		}
	}
	return out
}

// required is a row a Get must return: its uploader was connected and its
// value confirmed when the Get was sent.
type required struct {
	k     cloud.Key
	up    protocol.ClientRef
	acked uint64
}

// expect returns the rows of keys a Get sent now must return.
func (c *Checker) expect(keys []cloud.Key) []required {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []required
	for ref, u := range c.ups {
		if !u.ended.IsZero() {
			continue
		}
		for k, r := range u.rows {
			if r.acked > 0 && slices.Contains(keys, k) {
				out = append(out, required{k, ref, r.acked})
			}
		}
	}
	return out
}

type rowID struct {
	k  cloud.Key
	up protocol.ClientRef
}

// checkGet checks a reader's Get, sent at sent with the rows req required
// then, and records it for the figures.
func (c *Checker) checkGet(sent time.Time, req []required, keys []cloud.Key, res *cloud.Result, err error) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := getRecord{sent: sent, answered: now}
	if err != nil {
		rec.failed = true
		c.gets = append(c.gets, rec)
		var reachable []string
		for _, k := range keys {
			if c.allowed == nil || !c.allowed(k) {
				reachable = append(reachable, k.String())
			}
		}
		if len(reachable) > 0 {
			c.violate("Get failed (%v) although the owners of %d keys were reachable the whole time (%s)",
				err, len(reachable), strings.Join(reachable, " "))
		}
		return
	}
	rec.partial = res.Partial
	consistent := !res.Partial && !res.Truncated
	if res.Truncated {
		c.violate("Get truncated: the load must fit the download limit")
	}
	var wrong []string
	for _, k := range res.Missing {
		if c.allowed == nil || !c.allowed(k) {
			wrong = append(wrong, k.String())
		}
	}
	if len(wrong) > 0 {
		c.violate("Partial Get missed %d keys whose owners were reachable the whole time: %s",
			len(wrong), strings.Join(wrong, " "))
	}
	seen := make(map[rowID]uint64)
	for _, r := range res.Rows {
		id := rowID{r.Key, r.Uploader}
		if _, dup := seen[id]; dup {
			c.violate("Get returned the row %s of %s twice", r.Key, r.Uploader)
			consistent = false
		}
		seq, _ := strconv.ParseUint(string(r.Data), 10, 64)
		seen[id] = seq
		if u := c.ups[r.Uploader]; u == nil || (!u.ended.IsZero() && u.ended.Before(sent)) {
			consistent = false // a row of a gone uploader, not deleted yet
		}
	}
	for _, q := range req {
		seq, ok := seen[rowID{q.k, q.up}]
		switch {
		case !ok && res.Partial && slices.Contains(res.Missing, q.k):
			// said partial: fine
		case !ok:
			consistent = false
			c.pending = append(c.pending, pending{q.up, now,
				fmt.Sprintf("Get without Partial lacks the row %s of %s (confirmed value %d)", q.k, q.up, q.acked)})
		case seq < q.acked:
			consistent = false
		}
	}
	rec.consistent = consistent
	c.gets = append(c.gets, rec)
}

// checkNote checks a subscriber's notification: a Deleted is false when
// its uploader is connected (the load never releases a row).
func (c *Checker) checkNote(n cloud.Notification) {
	if n.Type != cloud.NotifyDeleted {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.ups[n.Row.Uploader]
	if u == nil || !u.ended.IsZero() {
		return
	}
	c.pending = append(c.pending, pending{n.Row.Uploader, time.Now(),
		fmt.Sprintf("false Deleted of the row %s of %s, a connected uploader", n.Key, n.Row.Uploader)})
}

// Violations returns every violation found so far: those found at once,
// and those pending observations whose uploader was still connected
// Margin after them (the others wait until Margin has passed, or are
// dropped when the uploader ended in time).
func (c *Checker) Violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	var keep []pending
	for _, p := range c.pending {
		u := c.ups[p.up]
		switch {
		case !u.ended.IsZero() && u.ended.Before(p.at.Add(Margin)):
			// its connection was ending: not a violation
		case now.Before(p.at.Add(Margin)):
			keep = append(keep, p)
		default:
			c.violations = append(c.violations, p.at.Format("15:04:05.000 ")+p.msg)
		}
	}
	c.pending = keep
	return slices.Clone(c.violations)
}

// Settled checks rows, a Get's answer after the load stopped posting and
// every unconfirmed post was posted again: it must be complete and hold
// exactly one row per key of every connected uploader, with its latest
// value, and no row of a gone uploader. It returns the first problem, or
// "".
func (c *Checker) Settled(keys []cloud.Key, res *cloud.Result) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if res.Partial || res.Truncated {
		return fmt.Sprintf("Get partial %v (missing %v), truncated %v", res.Partial, res.Missing, res.Truncated)
	}
	want := make(map[rowID]uint64)
	for ref, u := range c.ups {
		if !u.ended.IsZero() {
			continue
		}
		for k, r := range u.rows {
			if r.sent != r.acked {
				return fmt.Sprintf("row %s of %s not confirmed (sent %d, confirmed %d)", k, ref, r.sent, r.acked)
			}
			if r.acked > 0 && slices.Contains(keys, k) {
				want[rowID{k, ref}] = r.acked
			}
		}
	}
	got := make(map[rowID]uint64)
	for _, r := range res.Rows {
		id := rowID{r.Key, r.Uploader}
		if _, dup := got[id]; dup {
			return fmt.Sprintf("row %s of %s twice", r.Key, r.Uploader)
		}
		seq, _ := strconv.ParseUint(string(r.Data), 10, 64)
		got[id] = seq
		if _, ok := want[id]; !ok {
			return fmt.Sprintf("row %s of %s (value %d) is not one of a connected uploader", r.Key, r.Uploader, seq)
		}
	}
	for id, seq := range want {
		if g, ok := got[id]; !ok {
			return fmt.Sprintf("row %s of %s (value %d) missing", id.k, id.up, seq)
		} else if g != seq {
			return fmt.Sprintf("row %s of %s holds %d, latest is %d", id.k, id.up, g, seq)
		}
	}
	return ""
}

// Figures are a run's measures over a window of time.
type Figures struct {
	Gets, Partial, Failed int
	// Consistent is how long after the window's start the last
	// inconsistent Get was answered (0: none was); Unsettled is true when
	// the window's last Get was still inconsistent.
	Consistent time.Duration
	Unsettled  bool
	// P50 and P99 are the Gets' latencies (nearest rank).
	P50, P99 time.Duration
}

// PartialShare is the share of Gets answered Partial or failed.
func (f Figures) PartialShare() float64 {
	if f.Gets == 0 {
		return 0
	}
	return float64(f.Partial+f.Failed) / float64(f.Gets)
}

// Figures measures the Gets sent from from until to.
func (c *Checker) Figures(from, to time.Time) Figures {
	c.mu.Lock()
	defer c.mu.Unlock()
	gets := slices.Clone(c.gets)
	sort.Slice(gets, func(i, j int) bool { return gets[i].answered.Before(gets[j].answered) })
	var f Figures
	var lat []time.Duration
	for _, g := range gets {
		if g.sent.Before(from) || g.sent.After(to) {
			continue
		}
		f.Gets++
		lat = append(lat, g.answered.Sub(g.sent))
		if g.partial {
			f.Partial++
		}
		if g.failed {
			f.Failed++
		}
		f.Unsettled = !g.consistent
		if !g.consistent {
			f.Consistent = g.answered.Sub(from)
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		f.P50, f.P99 = lat[(len(lat)-1)/2], lat[(len(lat)*99+99)/100-1]
	}
	return f
}

// Owners returns, for each key, the cloud replica that owns it among ids,
// as the cloud memory places keys (rendezvous hashing of the key's hash
// over the replicas' IDs; the key hash is the one in
// plugins/cloudmemory/owner.go).
func Owners(ids []string, keys []cloud.Key) map[cloud.Key]string {
	r := rendezvous.NewRing(ids)
	out := make(map[cloud.Key]string, len(keys))
	for _, k := range keys {
		out[k] = r.Owner(rendezvous.Hash64(rendezvous.Hash(k.Primary) ^ (uint64(len(k.Primary))<<32 | uint64(k.Secondary))))
	}
	return out
}

// OwnedBy returns a predicate for AllowMissing: the keys owned by subject
// among before or among after.
func OwnedBy(subject string, before, after []string, keys []cloud.Key) func(cloud.Key) bool {
	b, a := Owners(before, keys), Owners(after, keys)
	return func(k cloud.Key) bool { return b[k] == subject || a[k] == subject }
}
