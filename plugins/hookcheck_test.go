package plugins_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cloudrift/cloudrift/plugins"
)

// wrongMessage names ClientMessage, but with the payload as bytes and no
// error: it is never called.
type wrongMessage struct{}

func (p *wrongMessage) ClientMessage(c plugins.Client, msg []byte) {}

// rightHooks implements its hooks exactly.
type rightHooks struct{}

func (p *rightHooks) ClientMessage(c plugins.Client, m plugins.Message) error { return nil }
func (p *rightHooks) Stop(context.Context) error                              { return nil }
func (p *rightHooks) Helper(int) string                                       { return "" }

func TestMisnamedHooks(t *testing.T) {
	got := plugins.MisnamedHooks(&wrongMessage{})
	if len(got) != 1 {
		t.Fatalf("MisnamedHooks = %v, want one", got)
	}
	m := got[0]
	if m.Method != "ClientMessage" || m.Hook != "plugins.ClientMessageHandler" ||
		m.Has != "func(plugins.Client, []uint8)" || m.Want != "func(plugins.Client, plugins.Message) error" {
		t.Fatalf("got %+v", m)
	}
	if s := m.String(); !strings.Contains(s, "ClientMessage") || !strings.Contains(s, m.Want) {
		t.Fatalf("String() = %q", s)
	}

	if got := plugins.MisnamedHooks(&rightHooks{}); got != nil {
		t.Fatalf("a plugin with exact hooks got %v", got)
	}
	// The value type lacks the pointer methods, but names none of them.
	if got := plugins.MisnamedHooks(rightHooks{}); got != nil {
		t.Fatalf("value with no methods got %v", got)
	}
	if got := plugins.MisnamedHooks(nil); got != nil {
		t.Fatalf("nil plugin got %v", got)
	}

}
