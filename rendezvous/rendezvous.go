// Package rendezvous places keys on servers by rendezvous (highest random
// weight) hashing. Every caller that sees the same set of server IDs picks
// the same owner for a key, whatever the order it saw them in; removing a
// server moves only the keys it owned, and adding one moves only the keys
// it now wins. The cloud memory places its keys with it, and a game's own
// plugins can place regions, rooms or shards the same way.
package rendezvous

import (
	"slices"
)

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// Hash returns a well-mixed 64-bit hash of s: FNV-1a, then a finalizer.
// Use it, or Hash64 of any other 64-bit value, to turn a key into the
// uint64 that Owner takes.
func Hash(s string) uint64 { return mix(fnv(fnvOffset, s)) }

// Hash64 returns a well-mixed hash of v (for integer keys).
func Hash64(v uint64) uint64 { return mix(v ^ fnvOffset) }

// Ring is an immutable set of server IDs with their hashes precomputed.
// The zero Ring is empty and owns nothing.
type Ring struct {
	ids    []string // sorted, unique
	hashes []uint64
}

// NewRing returns the ring of ids; duplicates count once.
func NewRing(ids []string) Ring {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	r := Ring{ids: ids, hashes: make([]uint64, len(ids))}
	for i, id := range ids {
		r.hashes[i] = fnv(fnvOffset, id)
	}
	return r
}

// Owner returns the ID that owns key (a hash, see Hash), or "" for an
// empty ring. Ties, vanishingly rare, go to the smaller ID.
func (r Ring) Owner(key uint64) string {
	if len(r.ids) == 0 {
		return ""
	}
	best, bestScore := 0, uint64(0)
	for i, h := range r.hashes {
		if s := mix(h ^ key); i == 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	return r.ids[best]
}

// Len returns how many IDs the ring holds.
func (r Ring) Len() int { return len(r.ids) }

// IDs returns the ring's IDs, sorted. The slice is the caller's.
func (r Ring) IDs() []string { return slices.Clone(r.ids) }

// Has reports whether id is in the ring.
func (r Ring) Has(id string) bool {
	_, ok := slices.BinarySearch(r.ids, id)
	return ok
}

// Equal reports whether both rings hold the same IDs.
func (r Ring) Equal(o Ring) bool { return slices.Equal(r.ids, o.ids) }

// Identified is what Pick needs of a candidate: its ID.
type Identified interface{ ID() string }

// Pick returns the candidate that owns key, as Owner would over a ring of
// the candidates' IDs, without building the ring: for callers whose
// candidate list changes with every call. It returns the zero S (nil for
// an interface) when candidates is empty.
func Pick[S Identified](candidates []S, key uint64) S {
	var best S
	var bestScore uint64
	found := false
	for _, c := range candidates {
		id := c.ID()
		s := mix(fnv(fnvOffset, id) ^ key)
		if !found || s > bestScore || (s == bestScore && id < best.ID()) {
			best, bestScore, found = c, s, true
		}
	}
	return best
}

func fnv(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// mix is the splitmix64 finalizer: every input bit affects every output
// bit, so the XOR of a server's and a key's hash scores like a hash of the
// pair. Without it, IDs that differ in one character (world-1, world-2)
// would score almost by prefix and one server would own nearly every key.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
