package cloudmemory

import (
	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/rendezvous"
)

// Key ownership: rendezvous hashing over the live replicas (package
// rendezvous). Every caller and every replica computes the same owner
// from the same set of replica IDs, and removing a replica moves only the
// keys it owned; adding one moves only the keys it now wins.

// keyHash returns the rendezvous hash of a key, which also picks its
// store shard. The primary's length is mixed in with the secondary so
// that ("ab", n) and ("a", m) never hash the same bytes.
func keyHash(k cloud.Key) uint64 {
	return rendezvous.Hash64(rendezvous.Hash(k.Primary) ^ (uint64(len(k.Primary))<<32 | uint64(k.Secondary)))
}

// ownerOf returns the replica of r that owns k, or "" for an empty ring.
func ownerOf(r rendezvous.Ring, k cloud.Key) string { return r.Owner(keyHash(k)) }
