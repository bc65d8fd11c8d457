// Package groups is the topology graph of a system: which groups a server
// dials (its upstream) and which it accepts (its downstream).
//
// If group A connectsTo B, every server of A dials every server of B: B is
// upstream of A and A is downstream of B. A Topology is built once from a
// validated config.System and is read-only afterwards, so it is safe for
// concurrent use.
package groups

import (
	"slices"
	"sort"

	"github.com/cloudrift/cloudrift/config"
)

// Topology is the connectsTo graph of a system.
type Topology struct {
	names []string            // every group, sorted
	up    map[string][]string // group -> groups it dials, sorted
	down  map[string][]string // group -> groups that dial it, sorted
	order []string            // upstream first
	edges [][2]string         // (dialer, acceptor), sorted
}

// New builds the topology of sys, which should have passed validation. On an
// unvalidated system it does not fail: connectsTo entries naming no group,
// the group itself, or a repeated target are ignored, and groups caught in a
// cycle come last in Order.
func New(sys *config.System) *Topology {
	t := &Topology{up: map[string][]string{}, down: map[string][]string{}}
	known := map[string]bool{}
	for _, g := range sys.Groups {
		if !known[g.Name] {
			known[g.Name] = true
			t.names = append(t.names, g.Name)
		}
	}
	sort.Strings(t.names)
	seen := map[[2]string]bool{}
	for _, g := range sys.Groups {
		for _, target := range g.ConnectsTo {
			e := [2]string{g.Name, target}
			if !known[target] || target == g.Name || seen[e] {
				continue
			}
			seen[e] = true
			t.up[g.Name] = append(t.up[g.Name], target)
			t.down[target] = append(t.down[target], g.Name)
			t.edges = append(t.edges, e)
		}
	}
	for _, m := range []map[string][]string{t.up, t.down} {
		for _, v := range m {
			sort.Strings(v)
		}
	}
	sort.Slice(t.edges, func(i, j int) bool {
		a, b := t.edges[i], t.edges[j]
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		return a[1] < b[1]
	})
	t.order = t.topological()
	return t
}

// topological orders the groups so that every group comes after all the
// groups it dials; among the groups ready at each step the smallest name
// goes first. Groups left in a cycle are appended by name.
func (t *Topology) topological() []string {
	pending := map[string]int{} // group -> upstream groups not yet placed
	for _, n := range t.names {
		pending[n] = len(t.up[n])
	}
	var ready []string
	for _, n := range t.names {
		if pending[n] == 0 {
			ready = append(ready, n)
		}
	}
	placed := map[string]bool{}
	order := make([]string, 0, len(t.names))
	for len(ready) > 0 {
		sort.Strings(ready)
		n := ready[0]
		ready = ready[1:]
		order = append(order, n)
		placed[n] = true
		for _, d := range t.down[n] {
			pending[d]--
			if pending[d] == 0 {
				ready = append(ready, d)
			}
		}
	}
	for _, n := range t.names {
		if !placed[n] {
			order = append(order, n)
		}
	}
	return order
}

// Upstream returns the groups that servers of group dial, sorted; nil for a
// group that dials none or does not exist. The caller owns the slice.
func (t *Topology) Upstream(group string) []string { return slices.Clone(t.up[group]) }

// Downstream returns the groups whose servers dial group, sorted; nil for a
// group nobody dials or that does not exist. The caller owns the slice.
func (t *Topology) Downstream(group string) []string { return slices.Clone(t.down[group]) }

// Accepts reports whether servers of group acceptor accept links from
// servers of group dialer, that is whether dialer connectsTo acceptor.
func (t *Topology) Accepts(acceptor, dialer string) bool {
	return slices.Contains(t.up[dialer], acceptor)
}

// Related reports whether servers of groups a and b link, in either
// direction.
func (t *Topology) Related(a, b string) bool {
	return t.Accepts(a, b) || t.Accepts(b, a)
}

// Order returns every group with upstream groups first: each group comes
// after all the groups it dials, and ties go to the smaller name. Starting
// groups in this order starts acceptors before their dialers. The caller
// owns the slice.
func (t *Topology) Order() []string { return slices.Clone(t.order) }

// Edges returns every link kind as (dialer, acceptor), sorted by dialer
// then acceptor. The caller owns the slice.
func (t *Topology) Edges() [][2]string { return slices.Clone(t.edges) }
