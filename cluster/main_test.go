package cluster_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain serves the whole test binary: the package cluster_test files
// and the few package cluster ones link into one, which has one TestMain.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
