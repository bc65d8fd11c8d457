package extension_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/plugins/extension"
	"github.com/cloudrift/cloudrift/protocol"
)

// framer implements FrameHandler and a plugin hook exactly.
type framer struct{}

func (framer) Stop(context.Context) error                             { return nil }
func (framer) FrameKinds() []protocol.Kind                            { return nil }
func (framer) ServerFrame(plugins.RemoteServer, protocol.Frame) error { return nil }
func (framer) ClientFrame(plugins.Client, protocol.Frame) error       { return nil }

// halfFrames has FrameHandler's ServerFrame right but lacks the rest, and
// a PeersChanged with the wrong argument.
type halfFrames struct{}

func (halfFrames) ServerFrame(plugins.RemoteServer, protocol.Frame) error { return nil }
func (halfFrames) PeersChanged(ids []string) error                        { return nil }

func TestMisnamedHooks(t *testing.T) {
	if got := extension.MisnamedHooks(framer{}); got != nil {
		t.Fatalf("a plugin with exact hooks got %v", got)
	}
	got := extension.MisnamedHooks(halfFrames{})
	if len(got) != 2 {
		t.Fatalf("MisnamedHooks = %v, want two", got)
	}
	i := slices.IndexFunc(got, func(m plugins.MisnamedHook) bool { return m.Method == "ServerFrame" })
	if i < 0 || got[i].Hook != "extension.FrameHandler" ||
		!strings.Contains(got[i].Want, "FrameKinds") || !strings.Contains(got[i].Want, "ClientFrame") {
		t.Fatalf("half a FrameHandler: %v", got)
	}
	i = slices.IndexFunc(got, func(m plugins.MisnamedHook) bool { return m.Method == "PeersChanged" })
	if i < 0 || got[i].Hook != "extension.PeersHandler" || got[i].Want != "func([]extension.Peer) error" {
		t.Fatalf("wrong PeersChanged: %v", got)
	}
	// Package plugins alone does not know the extension hooks.
	if got := plugins.MisnamedHooks(halfFrames{}); got != nil {
		t.Fatalf("plugins.MisnamedHooks = %v", got)
	}
}
