package cluster_test

import (
	"strings"
	"testing"

	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/plugins"
)

// misnamed has a ClientMessage whose signature matches no hook.
type misnamed struct{}

func (p *misnamed) ClientMessage(c plugins.Client, msg []byte) {}

// misnamedPeers has an extension hook's method with the wrong argument.
type misnamedPeers struct{}

func (p *misnamedPeers) PeersChanged(ids []string) error { return nil }

// wellNamed implements ClientMessageHandler.
type wellNamed struct{}

func (p *wellNamed) ClientMessage(plugins.Client, plugins.Message) error { return nil }

// A plugin method named like a hook, of package plugins or extension, but
// with another signature is never called; the server says so when it
// hosts the plugin.
func TestMisnamedHookIsLogged(t *testing.T) {
	sys := clustertest.New(t, extSystem)
	sys.StartServer("g1", "a1", &wellNamed{})
	if logs := sys.Logs(); strings.Contains(logs, "named like a hook") {
		t.Fatalf("a plugin with a right hook was warned about:\n%s", logs)
	}
	sys.StartServer("g1", "a2", &misnamed{})
	sys.StartServer("g2", "b1", &misnamedPeers{})
	logs := sys.Logs()
	for _, want := range [][]string{
		{`"level":"warn"`, `"plugin":"*cluster_test.misnamed"`, `"method":"ClientMessage"`, `"want":"func(plugins.Client, plugins.Message) error"`},
		{`"level":"warn"`, `"plugin":"*cluster_test.misnamedPeers"`, `"method":"PeersChanged"`, `"want":"func([]extension.Peer) error"`},
	} {
		if !hasLine(logs, "named like a hook", want...) {
			t.Fatalf("no warning with %v:\n%s", want, logs)
		}
	}
}

// hasLine reports whether a line of logs holds mark and every one of want.
func hasLine(logs, mark string, want ...string) bool {
	for _, l := range strings.Split(logs, "\n") {
		if !strings.Contains(l, mark) {
			continue
		}
		all := true
		for _, w := range want {
			all = all && strings.Contains(l, w)
		}
		if all {
			return true
		}
	}
	return false
}
