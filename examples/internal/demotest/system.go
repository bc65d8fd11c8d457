package demotest

import (
	"slices"
	"testing"

	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/plugins"

	// The examples' systems run the cloud memory: importing this package
	// compiles it into the test.
	_ "github.com/cloudrift/cloudrift/plugins/cloudmemory"
)

// System is an example's system file run in-process for one test by
// clustertest: every server on one embedded registry hub, over loopback,
// closed when the test ends. Make one with Load, then start its servers
// with the clustertest.System methods.
type System struct {
	*clustertest.System
	t testing.TB
}

// Load loads the system file at path (config.Load: environment expanded,
// then validated) and fails t if it does not load. No server starts yet.
func Load(t testing.TB, path string) *System {
	t.Helper()
	return &System{System: clustertest.Load(t, path), t: t}
}

// Settings decodes the settings the file gives the plugin named plugin in
// group into v (a non-nil pointer), strictly, as the plugin does; it fails
// t if the group does not run the plugin or the settings do not decode.
func (s *System) Settings(group, plugin string, v any) {
	t := s.t
	t.Helper()
	cfg := s.Config()
	g, ok := cfg.Group(group)
	if !ok {
		t.Fatalf("%s has no group %q", cfg.File, group)
	}
	i := slices.IndexFunc(g.Plugins, func(p config.Plugin) bool { return p.Name == plugin })
	if i < 0 {
		t.Fatalf("group %s runs no plugin %s", group, plugin)
	}
	if err := plugins.DecodeStrict(&g.Plugins[i].Settings, v); err != nil {
		t.Fatal(err)
	}
}
