package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
)

// View is a live copy of the rows of some keys: it subscribes to them and
// keeps a local map that is always the server's state as of the last
// message read (the Get snapshot, then every notification and resync, in
// the server's order, applied on the read goroutine before OnCloud or the
// Notifications channel sees them).
//
// Views on the same key share one subscription per client: the client
// subscribes with the union of their uploader filters and each view keeps
// the rows its own filter matches. Do not also subscribe to a view's keys
// with Get or end their subscription with Unsubscribe: the server keeps
// one filter per key and client.
//
// A View of a Client lives as long as the client: when the client ends,
// the view keeps its last rows and Err reports why. A View of a
// Reconnector (Reconnector.View) moves to each new connection and is
// subscribed there again. Methods are safe for concurrent use.
type View struct {
	r    *Reconnector // nil: a client's view
	keys []cloud.Key
	ups  map[ClientRef]struct{} // nil: every uploader

	mu        sync.Mutex
	c         *Client // the client subscribed for the view; nil between connections
	rows      map[cloud.Key]map[ClientRef]cloud.Row
	missing   map[cloud.Key]bool // no snapshot yet (a partial Get; a resync follows)
	truncated map[cloud.Key]bool // the snapshot was cut by the download limit
	changed   chan struct{}
	closed    bool
}

// viewGet is a Get that snapshots keys for every view of them.
type viewGet struct {
	keys []cloud.Key
}

// View subscribes to keys (limited to uploaders, when given) and returns
// a view of their rows once the snapshot has arrived. On error nothing is
// subscribed for this view.
func (c *Client) View(ctx context.Context, keys []cloud.Key, uploaders ...ClientRef) (*View, error) {
	if err := validKeys(keys); err != nil {
		return nil, err
	}
	v := newView(keys, uploaders)
	if err := c.subscribeView(ctx, v); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.WriteTimeout)
		v.Close(cctx)
		cancel()
		return nil, err
	}
	return v, nil
}

// newView returns a view of keys (without duplicates), attached to no
// client yet.
func newView(keys []cloud.Key, uploaders []ClientRef) *View {
	v := &View{
		rows:      make(map[cloud.Key]map[ClientRef]cloud.Row),
		missing:   make(map[cloud.Key]bool),
		truncated: make(map[cloud.Key]bool),
		changed:   make(chan struct{}, 1),
	}
	for _, k := range keys {
		if !slices.Contains(v.keys, k) {
			v.keys = append(v.keys, k)
			v.missing[k] = true
		}
	}
	if len(uploaders) > 0 {
		v.ups = make(map[ClientRef]struct{}, len(uploaders))
		for _, u := range uploaders {
			v.ups[u] = struct{}{}
		}
	}
	return v
}

// subscribeView attaches v to c and subscribes its keys with the union
// filters of c's views.
func (c *Client) subscribeView(ctx context.Context, v *View) error {
	for _, g := range c.attachViews(v) {
		if err := c.viewSubscribe(ctx, g); err != nil {
			return err
		}
	}
	return nil
}

// attachViews registers views with c, so that c's snapshots and
// notifications update them, and returns the subscriptions their keys now
// need.
func (c *Client) attachViews(views ...*View) []unionGroup {
	cs := &c.cloud
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.views == nil {
		cs.views = make(map[cloud.Key][]*View)
	}
	var keys []cloud.Key
	for _, v := range views {
		v.mu.Lock()
		v.c = c
		v.mu.Unlock()
		for _, k := range v.keys {
			cs.views[k] = append(cs.views[k], v)
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	return cs.unionGroupsLocked(keys)
}

// detachView unregisters v from c and returns the keys no view of c needs
// anymore and the subscriptions the other views of v's keys now need.
func (c *Client) detachView(v *View) (gone []cloud.Key, groups []unionGroup) {
	cs := &c.cloud
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, k := range v.keys {
		vs := slices.DeleteFunc(cs.views[k], func(o *View) bool { return o == v })
		if len(vs) == 0 {
			delete(cs.views, k)
			gone = append(gone, k)
		} else {
			cs.views[k] = vs
		}
	}
	return gone, cs.unionGroupsLocked(v.keys)
}

// unionGroup is keys whose views' filters have the same union.
type unionGroup struct {
	keys []cloud.Key
	ups  []ClientRef // nil: every uploader
}

// unionGroupsLocked groups keys by the union of the filters of the views
// on each (cs.mu held).
func (cs *cloudState) unionGroupsLocked(keys []cloud.Key) []unionGroup {
	var groups []unionGroup
	index := make(map[string]int)
	for _, k := range keys {
		views := cs.views[k]
		if len(views) == 0 {
			continue
		}
		var ups []ClientRef
		all := false
		set := make(map[ClientRef]struct{})
		for _, v := range views {
			if v.ups == nil {
				all = true
				break
			}
			for u := range v.ups {
				set[u] = struct{}{}
			}
		}
		if !all {
			for u := range set {
				ups = append(ups, u)
			}
			slices.SortFunc(ups, protocol.CompareRefs)
		}
		sig := "*"
		if !all {
			var b strings.Builder
			for _, u := range ups {
				fmt.Fprintf(&b, "%q#%d,", u.Server, u.ID)
			}
			sig = b.String()
		}
		i, ok := index[sig]
		if !ok {
			i = len(groups)
			index[sig] = i
			groups = append(groups, unionGroup{ups: ups})
		}
		groups[i].keys = append(groups[i].keys, k)
	}
	return groups
}

// viewSubscribe subscribes to a group's keys with its union filter; the
// snapshot is applied to every view of the keys on the read goroutine.
func (c *Client) viewSubscribe(ctx context.Context, g unionGroup) error {
	q := cloud.Query{Keys: g.keys, Uploaders: g.ups, Subscribe: true}
	_, err := c.cloudCall(ctx, protocol.KindCloudGet, &viewGet{keys: g.keys}, func(req uint32) []byte {
		return (&cloudwire.Get{Req: req, Query: q}).AppendTo(nil)
	})
	return err
}

// applySnapshot replaces the rows of the snapshot's keys in every view of
// them (read goroutine).
func (c *Client) applySnapshot(vg *viewGet, m *cloudwire.Result) {
	if m.Code != cloud.CodeOK {
		return
	}
	byKey := make(map[cloud.Key][]cloud.Row)
	for _, r := range m.Rows {
		byKey[r.Key] = append(byKey[r.Key], r)
	}
	// With a truncated result, the key of the last row and every later
	// key may be incomplete.
	cutFrom := len(vg.keys)
	if m.Truncated {
		cutFrom = 0
		if n := len(m.Rows); n > 0 {
			cutFrom = slices.Index(vg.keys, m.Rows[n-1].Key)
		}
	}
	cs := &c.cloud
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for i, k := range vg.keys {
		if slices.Contains(m.Missing, k) {
			continue // a resync brings it
		}
		for _, v := range cs.views[k] {
			v.replace(k, byKey[k], i >= cutFrom)
		}
	}
}

// applyNotification applies n to every view of its key (read goroutine).
func (c *Client) applyNotification(n *cloud.Notification) {
	cs := &c.cloud
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, v := range cs.views[n.Key] {
		switch n.Type {
		case cloud.NotifyResync:
			v.replace(n.Key, n.Rows, n.Truncated)
		default:
			v.apply(n)
		}
	}
}

func (v *View) matches(up ClientRef) bool {
	if v.ups == nil {
		return true
	}
	_, ok := v.ups[up]
	return ok
}

// replace sets the rows of k to those of rows v's filter matches.
func (v *View) replace(k cloud.Key, rows []cloud.Row, truncated bool) {
	v.mu.Lock()
	m := make(map[ClientRef]cloud.Row, len(rows))
	for _, r := range rows {
		if v.matches(r.Uploader) {
			m[r.Uploader] = r
		}
	}
	v.rows[k] = m
	delete(v.missing, k)
	v.truncated[k] = truncated
	v.mu.Unlock()
	v.signal()
}

func (v *View) apply(n *cloud.Notification) {
	if !v.matches(n.Row.Uploader) {
		return
	}
	v.mu.Lock()
	switch n.Type {
	case cloud.NotifyUpdated:
		if v.rows[n.Key] == nil {
			v.rows[n.Key] = make(map[ClientRef]cloud.Row)
		}
		v.rows[n.Key][n.Row.Uploader] = n.Row
	case cloud.NotifyDeleted:
		delete(v.rows[n.Key], n.Row.Uploader)
	}
	v.mu.Unlock()
	v.signal()
}

func (v *View) signal() {
	select {
	case v.changed <- struct{}{}:
	default:
	}
}

// Keys returns the view's keys.
func (v *View) Keys() []cloud.Key { return slices.Clone(v.keys) }

// Rows returns the view's rows in key order (the order View was given),
// then uploader order. Their Data must not be modified.
func (v *View) Rows() []cloud.Row {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []cloud.Row
	for _, k := range v.keys {
		start := len(out)
		for _, r := range v.rows[k] {
			out = append(out, r)
		}
		part := out[start:]
		sort.Slice(part, func(i, j int) bool { return protocol.CompareRefs(part[i].Uploader, part[j].Uploader) < 0 })
	}
	return out
}

// Row returns the row of uploader under k, if the view holds one.
func (v *View) Row(k cloud.Key, uploader ClientRef) (cloud.Row, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	r, ok := v.rows[k][uploader]
	return r, ok
}

// Changed returns a channel that receives a value after each change to
// the view (several changes may be reported by one value). It is never
// closed; watch the client's Done as well.
func (v *View) Changed() <-chan struct{} { return v.changed }

// Complete reports whether the view holds every row of its keys: false
// while a key's snapshot is missing (a partial Get: its resync follows) or
// was cut by the server's download byte limit.
func (v *View) Complete() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.missing) > 0 {
		return false
	}
	for _, t := range v.truncated {
		if t {
			return false
		}
	}
	return true
}

// Err returns nil while the client runs, then why it ended. For a view of
// a Reconnector: nil while Run runs (between connections too), then the
// error Run returned.
func (v *View) Err() error {
	if v.r != nil {
		return v.r.runErr()
	}
	return v.client().Err()
}

func (v *View) client() *Client {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.c
}

// unsubscribed marks every key of v as missing (Complete is false) and
// detaches v from its client: the connection that kept it up to date
// ended, and the view keeps its last rows until it is subscribed again.
func (v *View) unsubscribed() {
	v.mu.Lock()
	v.c = nil
	for _, k := range v.keys {
		v.missing[k] = true
	}
	v.mu.Unlock()
	v.signal()
}

// Close ends the view: keys no other view needs are unsubscribed, and the
// others are subscribed again with the narrower union of the remaining
// views' filters. The view keeps its last rows. Close is idempotent.
func (v *View) Close(ctx context.Context) error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	v.mu.Unlock()
	if v.r != nil {
		v.r.forgetView(v)
	}
	c := v.client()
	if c == nil {
		return nil
	}
	gone, groups := c.detachView(v)
	if c.Err() != nil {
		return nil // the client ended: nothing is subscribed anymore
	}
	var errs []error
	if len(gone) > 0 {
		if err := c.Unsubscribe(ctx, gone); err != nil && !errors.Is(err, cloud.ErrNotSubscribed) {
			errs = append(errs, err)
		}
	}
	for _, g := range groups {
		if err := c.viewSubscribe(ctx, g); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
