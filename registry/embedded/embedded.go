// Package embedded is an in-process registry: one Hub holds the members of
// one system, and every server of that system gets its own Connector from
// it. It serves dev mode (the whole system in one process) and tests, and
// has the same semantics as every other registry.Connector (it passes
// registry/registrytest).
//
// The hub can inject faults: Expire drops a member as if its TTL lapsed,
// Pause/Resume simulate a registry outage, and Blackout, Flap and Hide
// make watchers see members missing for a while although they stay
// registered (faults.go).
//
// The hub starts no goroutines of its own but the timers that end
// Blackout, Flap and Hide. Delivery to watchers is synchronous and never
// blocks (latest-wins): when a Register, Deregister, Expire, Close,
// Resume, Blackout, Flap or Hide call returns, every affected watch
// channel already holds the new snapshot.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/cloudrift/cloudrift/registry"
)

// ErrUnavailable is returned (wrapped) by Register and Deregister while the
// hub is paused, as a real connector returns a transport error while its
// registry is down. It wraps registry.ErrUnavailable.
var ErrUnavailable = fmt.Errorf("registry/embedded: paused: %w", registry.ErrUnavailable)

var (
	_ registry.Connector = (*Connector)(nil)
	_ registry.Updater   = (*Connector)(nil)
)

// Hub is the registry of one system. The zero value is an empty, running
// hub ready to use; NewHub returns the same. All methods are safe for
// concurrent use.
type Hub struct {
	mu sync.Mutex
	// Guarded by mu; maps are created on first use.
	paused  bool
	faults  faults // see faults.go
	byID    map[string]*entry
	groups  map[string]map[string]*entry // group → ID → entry
	watches map[string]map[*watch]struct{}
}

// entry is one registered member and the connector that holds it.
type entry struct {
	member registry.Member
	owner  *Connector
}

// watch is one Watch call.
type watch struct {
	group string
	conn  *Connector
	pub   *registry.Publisher
	// stop unregisters the ctx callback; done is closed once that
	// callback, if it ran, has finished closing the watch.
	stop func() bool
	done chan struct{}
}

// NewHub returns an empty, running hub.
func NewHub() *Hub { return &Hub{} }

// Connector returns a new, open connector to h for one server.
func (h *Hub) Connector() *Connector {
	return &Connector{hub: h, watches: make(map[*watch]struct{})}
}

// Members returns the members of group currently in the hub, sorted by ID,
// whether or not the hub is paused. The slice is owned by the caller.
func (h *Hub) Members(group string) []registry.Member {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := h.snapshotLocked(group)
	for i := range ms {
		ms[i].Meta = maps.Clone(ms[i].Meta)
	}
	return ms
}

// Expire removes the member with this ID as if its TTL had lapsed. Its
// connector stays open and forgets the registration: its Deregister returns
// registry.ErrNotRegistered and a later Register works again. Expire of an
// unknown ID does nothing. While the hub is paused, watchers learn of the
// removal on Resume.
func (h *Hub) Expire(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.byID[id]
	if e == nil {
		return
	}
	h.removeLocked(e)
	h.notifyLocked(e.member.Group)
}

// Pause simulates a registry outage: until Resume, watchers receive
// nothing new (the last set they received stands), a new Watch gets no
// first snapshot, and Register and Deregister fail with ErrUnavailable.
// Close still removes the connector's member (as its TTL would), and
// Expire still works; watchers see both on Resume. Pausing a paused hub
// does nothing.
func (h *Hub) Pause() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.paused = true
}

// Resume ends an outage begun by Pause: every watcher receives the
// current set of its group if it differs from the last one it received.
// Resuming a running hub does nothing.
func (h *Hub) Resume() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.paused {
		return
	}
	h.paused = false
	for g := range h.watches {
		h.notifyLocked(g)
	}
}

// snapshotLocked returns the members of group sorted by ID. Meta maps are
// shared with the hub. h.mu must be held.
func (h *Hub) snapshotLocked(group string) []registry.Member {
	g := h.groups[group]
	ms := make([]registry.Member, 0, len(g))
	for _, e := range g {
		ms = append(ms, e.member)
	}
	registry.SortMembers(ms)
	return ms
}

// notifyLocked publishes the current set of group to its watchers unless
// the hub is paused. h.mu must be held; publishing never blocks.
func (h *Hub) notifyLocked(group string) {
	if h.paused {
		return
	}
	ws := h.watches[group]
	if len(ws) == 0 {
		return
	}
	snap := h.viewLocked(group) // each Publish copies it
	for w := range ws {
		w.pub.Publish(snap)
	}
}

// addLocked stores e, whose ID must not be in the hub. h.mu must be held.
func (h *Hub) addLocked(e *entry) {
	if h.byID == nil {
		h.byID = make(map[string]*entry)
		h.groups = make(map[string]map[string]*entry)
	}
	h.byID[e.member.ID] = e
	g := h.groups[e.member.Group]
	if g == nil {
		g = make(map[string]*entry)
		h.groups[e.member.Group] = g
	}
	g[e.member.ID] = e
	e.owner.self = e
}

// removeLocked deletes e from the hub and from its owner, without
// notifying watchers. h.mu must be held.
func (h *Hub) removeLocked(e *entry) {
	delete(h.byID, e.member.ID)
	if g := h.groups[e.member.Group]; g != nil {
		delete(g, e.member.ID)
		if len(g) == 0 {
			delete(h.groups, e.member.Group)
		}
	}
	if e.owner.self == e {
		e.owner.self = nil
	}
}

// detachLocked removes w from the hub and its connector. It is safe to
// call more than once. h.mu must be held.
func (h *Hub) detachLocked(w *watch) {
	if ws := h.watches[w.group]; ws != nil {
		delete(ws, w)
		if len(ws) == 0 {
			delete(h.watches, w.group)
		}
	}
	delete(w.conn.watches, w)
}

// Connector is one server's connection to a Hub. It implements
// registry.Connector; obtain one with Hub.Connector. All methods are safe
// for concurrent use.
type Connector struct {
	hub *Hub
	// Guarded by hub.mu.
	closed  bool
	self    *entry // nil when nothing is registered
	watches map[*watch]struct{}
}

// Register announces self to the hub. Besides the registry.Connector
// contract: if another connector holds a member with the same ID, that
// member is replaced, as when a restarted replica registers again before
// its old entry lapsed; the other connector forgets its registration.
// While the hub is paused Register fails with ErrUnavailable.
func (c *Connector) Register(ctx context.Context, self registry.Member) error {
	h := c.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case c.closed:
		return fmt.Errorf("registry/embedded: register: %w", registry.ErrClosed)
	case ctx.Err() != nil:
		return fmt.Errorf("registry/embedded: register: %w", ctx.Err())
	}
	if err := self.Validate(); err != nil {
		return fmt.Errorf("registry/embedded: register %q: %w", self.ID, err)
	}
	if c.self != nil {
		return fmt.Errorf("registry/embedded: register %q: %w (as %q)",
			self.ID, registry.ErrAlreadyRegistered, c.self.member.ID)
	}
	if h.paused {
		return fmt.Errorf("registry/embedded: register %q: %w", self.ID, ErrUnavailable)
	}
	self.Meta = maps.Clone(self.Meta)
	oldGroup := ""
	if old := h.byID[self.ID]; old != nil {
		oldGroup = old.member.Group
		h.removeLocked(old)
	}
	h.addLocked(&entry{member: self, owner: c})
	h.notifyLocked(self.Group)
	if oldGroup != "" && oldGroup != self.Group {
		h.notifyLocked(oldGroup)
	}
	return nil
}

// Deregister removes the registered member. While the hub is paused it
// fails with ErrUnavailable and the member stays.
func (c *Connector) Deregister(ctx context.Context) error {
	h := c.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case c.closed:
		return fmt.Errorf("registry/embedded: deregister: %w", registry.ErrClosed)
	case ctx.Err() != nil:
		return fmt.Errorf("registry/embedded: deregister: %w", ctx.Err())
	case c.self == nil:
		return fmt.Errorf("registry/embedded: deregister: %w", registry.ErrNotRegistered)
	case h.paused:
		return fmt.Errorf("registry/embedded: deregister %q: %w", c.self.member.ID, ErrUnavailable)
	}
	e := c.self
	h.removeLocked(e)
	h.notifyLocked(e.member.Group)
	return nil
}

// Update implements registry.Updater: it replaces the registered member's
// Meta. While the hub is paused it fails with ErrUnavailable.
func (c *Connector) Update(ctx context.Context, self registry.Member) error {
	h := c.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case c.closed:
		return fmt.Errorf("registry/embedded: update: %w", registry.ErrClosed)
	case ctx.Err() != nil:
		return fmt.Errorf("registry/embedded: update: %w", ctx.Err())
	case c.self == nil:
		return fmt.Errorf("registry/embedded: update: %w", registry.ErrNotRegistered)
	case h.paused:
		return fmt.Errorf("registry/embedded: update %q: %w", self.ID, ErrUnavailable)
	}
	if err := registry.CheckUpdate(c.self.member, self); err != nil {
		return fmt.Errorf("registry/embedded: update %q: %w", self.ID, err)
	}
	c.self.member.Meta = maps.Clone(self.Meta)
	h.notifyLocked(self.Group)
	return nil
}

// Watch reports the members of group as the registry.Connector contract
// says. The first snapshot is in the channel when Watch returns, unless the
// hub is paused, in which case it comes on Resume. Watch returns ctx.Err()
// (wrapped) when ctx is already done. No goroutine serves the watch.
func (c *Connector) Watch(ctx context.Context, group string) (<-chan []registry.Member, error) {
	h := c.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case c.closed:
		return nil, fmt.Errorf("registry/embedded: watch %q: %w", group, registry.ErrClosed)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("registry/embedded: watch %q: %w", group, ctx.Err())
	case group == "":
		return nil, errors.New("registry/embedded: watch: empty group name")
	}
	w := &watch{group: group, conn: c, pub: registry.NewPublisher(), done: make(chan struct{})}
	if h.watches == nil {
		h.watches = make(map[string]map[*watch]struct{})
	}
	ws := h.watches[group]
	if ws == nil {
		ws = make(map[*watch]struct{})
		h.watches[group] = ws
	}
	ws[w] = struct{}{}
	c.watches[w] = struct{}{}
	if !h.paused {
		w.pub.Publish(h.viewLocked(group))
	}
	// The callback runs on its own short-lived goroutine once ctx is
	// done; it waits for h.mu, which this call holds, so it cannot run
	// before w is fully set up.
	w.stop = context.AfterFunc(ctx, func() {
		h.mu.Lock()
		h.detachLocked(w)
		h.mu.Unlock()
		w.pub.Close()
		close(w.done)
	})
	return w.pub.C(), nil
}

// Close deregisters the member (even while the hub is paused: its entry is
// dropped as its TTL would drop it, and watchers see that on Resume),
// closes every watch channel of this connector before it returns, and
// makes every later call fail with registry.ErrClosed. It always returns
// nil and is safe to call more than once.
func (c *Connector) Close() error {
	h := c.hub
	h.mu.Lock()
	if c.closed {
		h.mu.Unlock()
		return nil
	}
	c.closed = true
	if e := c.self; e != nil {
		h.removeLocked(e)
		h.notifyLocked(e.member.Group)
	}
	ws := make([]*watch, 0, len(c.watches))
	for w := range c.watches {
		ws = append(ws, w)
	}
	for _, w := range ws {
		h.detachLocked(w)
	}
	h.mu.Unlock()

	for _, w := range ws {
		if w.stop() {
			w.pub.Close()
		} else {
			<-w.done // the ctx callback is closing it
		}
	}
	return nil
}

// Type is the embedded connector's name in the system file's registry
// block. It takes no settings.
const Type = "embedded"

// init registers the embedded connector. Each Open makes a fresh Hub, so a
// connector opened from a system file sees only its own server: dev mode
// shares one Hub among all its servers instead.
func init() {
	registry.Register(Type, func(*struct{}, registry.Options) (registry.Connector, error) {
		return NewHub().Connector(), nil
	})
}
