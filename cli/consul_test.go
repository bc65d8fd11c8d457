package cli

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/cloudrift/cloudrift/dashboard"
	"github.com/cloudrift/cloudrift/internal/consultest"
)

// TestRunWithConsul runs two servers of different groups as two "run"
// commands that only meet through a real Consul agent, and waits until the
// downstream one has linked to the upstream one.
func TestRunWithConsul(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	path := writeFile(t, "consul.yaml", fmt.Sprintf(`system: clitest
secret: ${CLOUDRIFT_SECRET}
registry:
  type: consul
  settings:
    address: %s
groups:
  - name: edge
    visibility: external
    connectsTo: [core]
  - name: core
    visibility: internal
`, agent.Addr()))

	core := start(t, "run", "-config", path, "-group", "core", "-id", "core-1", "-log-level", "info")
	core.Match(t, &core.Stdout, listening)
	// The operations port's URL is in the registry, for the dashboard.
	opsURL := core.Match(t, &core.Stdout, regexp.MustCompile(`operations port (http://\S+)`))[1]
	capi, err := agent.API()
	if err != nil {
		t.Fatal(err)
	}
	entries, _, err := capi.Health().Service("cloudrift-clitest-core", "", false, nil)
	if err != nil || len(entries) != 1 {
		t.Fatalf("core in Consul: %d entries, %v", len(entries), err)
	}
	if got := entries[0].Service.Meta[dashboard.MetaOps]; got != opsURL {
		t.Errorf("registered ops URL %q, want the printed %q", got, opsURL)
	}
	edge := start(t, "run", "-config", path, "-group", "edge", "-id", "edge-1", "-log-level", "info")
	if m := edge.Match(t, &edge.Stdout, listening); !regexp.MustCompile(`listening on \S+, consul registry`).MatchString(edge.Stdout.String()) {
		t.Errorf("run does not say it uses consul: %q", m[0])
	}
	edge.Match(t, &edge.Stderr, regexp.MustCompile(`link up.*peer=core-1`))
	core.Match(t, &core.Stderr, regexp.MustCompile(`link up.*peer=edge-1`))

	if code := edge.Stop(t); code != 0 {
		t.Errorf("edge: exit %d; stderr:\n%s", code, &edge.Stderr)
	}
	if code := core.Stop(t); code != 0 {
		t.Errorf("core: exit %d; stderr:\n%s", code, &core.Stderr)
	}
}
