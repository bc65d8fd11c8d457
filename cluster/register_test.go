package cluster_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/registry"
)

// A server started while its registry is unavailable keeps trying to
// register, logging each attempt, and starts once the registry is back.
func TestStartWaitsForRegistry(t *testing.T) {
	sys := newSystem(t, twoGroups())
	sys.Hub().Pause()
	srv := sys.NewUnstarted(cluster.Options{Group: "g2", ID: "b1"})
	started := make(chan error, 1)
	go func() { started <- srv.Start(testutil.Context(t)) }()

	testutil.WaitFor(t, "two failed attempts logged", func() bool {
		return strings.Count(sys.Logs(), "registry unavailable; registering again after the wait") >= 2
	})
	select {
	case err := <-started:
		t.Fatalf("Start returned while the registry was paused: %v", err)
	default:
	}
	for _, field := range []string{`"attempt":1`, `"attempt":2`, `"retry_in":`, `"error":"registry/embedded: register \"b1\": registry/embedded: paused: registry: unavailable"`} {
		if !strings.Contains(sys.Logs(), field) {
			t.Fatalf("attempt logs lack %s:\n%s", field, sys.Logs())
		}
	}
	sys.Hub().Resume()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("Start after the registry came back: %v", err)
		}
	case <-time.After(testutil.Patience):
		t.Fatal("Start did not return after the registry came back")
	}
	if ms := sys.Hub().Members("g2"); len(ms) != 1 || ms[0].ID != "b1" {
		t.Fatalf("g2 members = %v, want b1", ms)
	}
}

// Past registry.startTimeout, Start gives up naming the bound.
func TestStartGivesUpAfterStartTimeout(t *testing.T) {
	cfg := twoGroups()
	cfg.Registry.StartTimeout = config.Duration(300 * time.Millisecond)
	sys := newSystem(t, cfg)
	sys.Hub().Pause()
	err := sys.NewUnstarted(cluster.Options{Group: "g2", ID: "b1"}).Start(testutil.Context(t))
	if !errors.Is(err, cluster.ErrRegistryUnreachable) || !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("Start = %v, want ErrRegistryUnreachable wrapping registry.ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "300ms (registry.startTimeout)") {
		t.Fatalf("Start error does not name the bound: %v", err)
	}
}
