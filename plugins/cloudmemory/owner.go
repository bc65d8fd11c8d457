package cloudmemory

import (
	"slices"

	"github.com/cloudrift/cloudrift/cloud"
)

// Key ownership: rendezvous (highest random weight) hashing over the live
// replicas. Every caller and every replica computes the same owner from
// the same set of replica IDs, and removing a replica moves only the keys
// it owned; adding one moves only the keys it now wins.

// ring is an immutable set of replica IDs with their precomputed hashes.
// The zero ring owns nothing.
type ring struct {
	ids    []string // sorted
	hashes []uint64
}

func newRing(ids []string) ring {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	r := ring{ids: ids, hashes: make([]uint64, len(ids))}
	for i, id := range ids {
		r.hashes[i] = fnv64(fnvOffset, id)
	}
	return r
}

func (r ring) empty() bool { return len(r.ids) == 0 }

// owner returns the replica that owns key, or "" for an empty ring. Ties
// (vanishingly rare) go to the smaller ID.
func (r ring) owner(key cloud.Key) string {
	if len(r.ids) == 0 {
		return ""
	}
	kh := keyHash(key)
	best, bestScore := 0, uint64(0)
	for i, h := range r.hashes {
		if s := mix64(h ^ kh); i == 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	return r.ids[best]
}

func (r ring) has(id string) bool {
	_, ok := slices.BinarySearch(r.ids, id)
	return ok
}

func (r ring) equal(o ring) bool { return slices.Equal(r.ids, o.ids) }

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnv64(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// keyHash hashes a key; the primary's length is mixed in so that
// ("ab", n) and ("a", m) never share a prefix of hashed bytes.
func keyHash(k cloud.Key) uint64 {
	h := fnv64(fnvOffset, k.Primary)
	h ^= uint64(len(k.Primary))<<32 | uint64(k.Secondary)
	h *= fnvPrime
	return mix64(h)
}

// mix64 is the splitmix64 finalizer: every input bit affects every output
// bit, so the XOR of two hashes scores like a hash of the pair.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
