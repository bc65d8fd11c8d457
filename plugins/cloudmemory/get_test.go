package cloudmemory

import (
	"testing"

	"github.com/cloudrift/cloudrift/cloud"
)

// A Get's answer slots follow its keys, searched in a short query and
// indexed in a long one.
func TestGetResultSlots(t *testing.T) {
	for _, n := range []int{1, 16, 17, 64} {
		keys := make([]key, n)
		for i := range keys {
			keys[i] = cloud.Key{Primary: "slot", Secondary: uint32(n - i)}
		}
		op := &getOp{keys: keys, res: make([]keyRes, n)}
		for i := n - 1; i >= 0; i-- {
			op.resOf(keys[i]).count = uint32(i + 1)
		}
		for i := range keys {
			if got := op.res[i].count; got != uint32(i+1) {
				t.Fatalf("%d keys: slot %d holds %d, want %d", n, i, got, i+1)
			}
		}
	}
}
