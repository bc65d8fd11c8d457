package main

import (
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/examples/internal/demotest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestDev runs the README's command for a few seconds: the system of
// cluster.yaml with two simulated game servers, until the browser lists
// both.
func TestDev(t *testing.T) {
	demotest.Dev(t, "../../cluster.yaml", "a listing of 2 servers", func(out string) bool {
		return strings.Contains(out, "directory: 2 listed")
	}, options()...)
}

func TestValidate(t *testing.T) {
	demotest.Validate(t, "../../cluster.yaml", options()...)
}
