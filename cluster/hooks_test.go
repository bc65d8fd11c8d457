package cluster

import (
	"strings"
	"testing"

	"github.com/cloudrift/cloudrift/plugins"
)

// misnamed has a ClientMessage whose signature matches no hook.
type misnamed struct{}

func (p *misnamed) ClientMessage(c plugins.Client, msg []byte) {}

// wellNamed implements ClientMessageHandler.
type wellNamed struct{}

func (p *wellNamed) ClientMessage(plugins.Client, plugins.Message) error { return nil }

// A plugin method named like a hook but with another signature is never
// called; the server says so when it hosts the plugin.
func TestMisnamedHookIsLogged(t *testing.T) {
	h := newHarness(t, twoGroups())
	h.newServer(Options{System: h.sys, Group: "g1", ID: "a1", Plugins: []plugins.Plugin{&wellNamed{}}})
	if logs := h.logs.String(); strings.Contains(logs, "named like a hook") {
		t.Fatalf("a plugin with a right hook was warned about:\n%s", logs)
	}
	h.newServer(Options{System: h.sys, Group: "g1", ID: "a2", Plugins: []plugins.Plugin{&misnamed{}}})
	logs := h.logs.String()
	var line string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "named like a hook") {
			line = l
		}
	}
	for _, want := range []string{`"level":"warn"`, `"plugin":"*cluster.misnamed"`, `"method":"ClientMessage"`,
		`"want":"func(plugins.Client, plugins.Message) error"`} {
		if !strings.Contains(line, want) {
			t.Fatalf("no warning with %s:\n%s", want, logs)
		}
	}
}
