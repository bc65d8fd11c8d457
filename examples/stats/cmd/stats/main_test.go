package main

import (
	"path/filepath"
	"regexp"
	"testing"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/examples/internal/demotest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var totalRE = regexp.MustCompile(`stats: running total (\d+)`)

// TestDev runs the README's command for a few seconds: the system of
// cluster.yaml with simulated players, until the running total grows above
// 0.
func TestDev(t *testing.T) {
	t.Setenv("STATS_DB", filepath.Join(t.TempDir(), "stats.db"))
	demotest.Dev(t, "../../cluster.yaml", "a running total above 0", func(out string) bool {
		return demotest.CountAbove(totalRE, out)
	}, options()...)
}

func TestValidate(t *testing.T) {
	demotest.Validate(t, "../../cluster.yaml", options()...)
}
