package main

import (
	"regexp"
	"testing"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/examples/internal/demotest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var doneRE = regexp.MustCompile(`tasks: round \d+: (\d+)/\d+ tasks done`)

// TestDev runs the README's command for a few seconds: the system of
// cluster.yaml with two workers, until some tasks are done.
func TestDev(t *testing.T) {
	demotest.Dev(t, "../../cluster.yaml", "a task done", func(out string) bool {
		return demotest.CountAbove(doneRE, out)
	}, options()...)
}

func TestValidate(t *testing.T) {
	demotest.Validate(t, "../../cluster.yaml", options()...)
}
