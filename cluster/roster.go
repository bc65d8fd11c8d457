package cluster

import (
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/registry"
)

// roster turns the snapshots of one registry watch into the membership
// the runtime acts on. A registry's answer can be wrong for a moment: a
// restarting agent reports an empty catalog, a flapping health check drops
// a member and brings it back. So a member joins as soon as a snapshot
// lists it (a new incarnation replaces the old one at once), but leaves
// only after no snapshot has listed it for grace without interruption. A
// snapshot that drops every member is no different: each absence waits out
// the grace, and members listed again within it change nothing.
//
// A roster belongs to one goroutine; it is not safe for concurrent use.
type roster struct {
	grace time.Duration
	// members holds every member that is listed or has been missing
	// for less than grace, by ID, as last listed.
	members map[string]registry.Member
	// missing holds when each member of members that the last snapshot
	// did not list was first found missing.
	missing map[string]time.Time
}

func newRoster(grace time.Duration) *roster {
	return &roster{grace: grace, members: make(map[string]registry.Member), missing: make(map[string]time.Time)}
}

// rosterChange says what one update or expire did, by member ID.
type rosterChange struct {
	changed bool     // the membership changed: apply it
	missing []string // newly missing from the registry, held for the grace
	back    []string // listed again within the grace
	gone    []string // missing for the grace: removed
}

// update takes a registry snapshot seen at now. The membership changes
// when a member joins, is replaced by a new incarnation, changes its
// address or metadata, or has been missing for grace (with a grace of
// zero, every absence is a departure at once).
func (ro *roster) update(snapshot []registry.Member, now time.Time) rosterChange {
	var c rosterChange
	listed := make(map[string]bool, len(snapshot))
	for _, m := range snapshot {
		listed[m.ID] = true
		if _, ok := ro.missing[m.ID]; ok {
			delete(ro.missing, m.ID)
			c.back = append(c.back, m.ID)
		}
		if old, ok := ro.members[m.ID]; !ok || !old.Equal(m) {
			ro.members[m.ID] = m
			c.changed = true
		}
	}
	for id := range ro.members {
		if _, ok := ro.missing[id]; !ok && !listed[id] {
			ro.missing[id] = now
			c.missing = append(c.missing, id)
		}
	}
	c.gone = ro.expire(now)
	c.changed = c.changed || len(c.gone) > 0
	return c
}

// expire removes the members missing for grace at now and returns their
// IDs.
func (ro *roster) expire(now time.Time) []string {
	var gone []string
	for id, since := range ro.missing {
		if now.Sub(since) >= ro.grace {
			delete(ro.missing, id)
			delete(ro.members, id)
			gone = append(gone, id)
		}
	}
	return gone
}

// next returns when the earliest pending departure is due, and false when
// no member is missing.
func (ro *roster) next() (time.Time, bool) {
	var at time.Time
	for _, since := range ro.missing {
		if due := since.Add(ro.grace); at.IsZero() || due.Before(at) {
			at = due
		}
	}
	return at, !at.IsZero()
}

// list returns the membership sorted by ID. The slice is the caller's; the
// members' Meta maps are shared.
func (ro *roster) list() []registry.Member {
	ms := make([]registry.Member, 0, len(ro.members))
	for _, m := range ro.members {
		ms = append(ms, m)
	}
	registry.SortMembers(ms)
	return ms
}

// followRegistry reads the snapshots of one watch through a roster of
// links.leaveGrace and calls apply with the membership each time it
// changes, and once for the first snapshot, until the watch ends or the
// server stops running. what names the watch in logs.
func (s *Server) followRegistry(what string, ch <-chan []registry.Member, apply func([]registry.Member)) {
	grace := s.links.LeaveGrace.Duration()
	ro := newRoster(grace)
	log := s.log.With().Str("watch", what).Logger()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	first := true
	for {
		var due <-chan time.Time
		if at, ok := ro.next(); ok {
			timer.Reset(time.Until(at))
			due = timer.C
		}
		select {
		case <-s.ctx.Done():
			return
		case ms, ok := <-ch:
			if !ok || !s.running() {
				return
			}
			c := ro.update(ms, time.Now())
			logChange(log, c, grace)
			if c.changed || first {
				apply(ro.list())
			}
			first = false
		case <-due:
			if !s.running() {
				return
			}
			gone := ro.expire(time.Now())
			logChange(log, rosterChange{gone: gone}, grace)
			if len(gone) > 0 {
				apply(ro.list())
			}
		}
	}
}

// logChange logs the absences a roster holds, ends or lets go.
func logChange(log zerolog.Logger, c rosterChange, grace time.Duration) {
	if len(c.missing) > 0 {
		slices.Sort(c.missing)
		log.Info().Strs("missing", c.missing).Dur("grace", grace).
			Msg("the registry stopped listing servers; they stay unless still missing after the grace")
	}
	if len(c.back) > 0 {
		slices.Sort(c.back)
		log.Info().Strs("back", c.back).Msg("servers the registry had stopped listing are listed again within the grace")
	}
	if len(c.gone) > 0 {
		slices.Sort(c.gone)
		log.Info().Strs("gone", c.gone).Dur("grace", grace).Msg("servers missing from the registry for the grace are gone")
	}
}
