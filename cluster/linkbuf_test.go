// This file is in package cluster because keepBuffer, the writer's
// choice of buffer to keep, is not exported.

package cluster

import "testing"

// A link keeps a small write buffer always, and one grown for a burst
// only while its batches use an eighth of it.
func TestKeepLinkBuffer(t *testing.T) {
	for _, c := range []struct {
		capacity, n int
		keep        bool
	}{
		{64 << 10, 0, true},
		{minKeptBuffer, 1, true},
		{16 << 20, 4 << 20, true},   // a flood's batches
		{16 << 20, 64 << 10, false}, // the flood is over
	} {
		if got := keepBuffer(c.capacity, c.n); got != c.keep {
			t.Errorf("keepBuffer(%d, %d) = %v, want %v", c.capacity, c.n, got, c.keep)
		}
	}
}
