package cluster

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/internal/logsample"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/plugins/extension"
	"github.com/cloudrift/cloudrift/protocol"
)

// pluginSlot is one hosted plugin with its hooks found by type assertion.
type pluginSlot struct {
	name  string
	p     plugins.Plugin
	log   zerolog.Logger
	logs  *logsample.Sampler // hook failures, sampled per hook
	tally hookTally          // hook failures counted per hook

	cloudOnce sync.Once
	cloud     plugins.CloudMemory // the plugin's session, made on first use
}

// hookSet holds, per hook, the plugins that implement it, in plugin order.
type hookSet struct {
	s            *Server
	slots        []pluginSlot
	onJoin       []hook[plugins.ServerJoinedHandler]
	onLeft       []hook[plugins.ServerLeftHandler]
	onServerConn []hook[plugins.ServerConnectedHandler]
	onServerDisc []hook[plugins.ServerDisconnectedHandler]
	onServerMsg  []hook[plugins.ServerMessageHandler]
	onAuth       []hook[plugins.ClientAuthenticator]
	onClientConn []hook[plugins.ClientConnectedHandler]
	onClientMsg  []hook[plugins.ClientMessageHandler]
	onClientDisc []hook[plugins.ClientDisconnectedHandler]
	onClientFail []hook[plugins.ClientSendFailedHandler]
	onPeers      []hook[extension.PeersHandler]
	filters      []hook[plugins.CloudFilter]
	// frames maps each extension kind (index kind-FirstExtensionKind) to
	// the plugin that claims it.
	frames [protocol.LastExtensionKind - protocol.FirstExtensionKind + 1]*hook[extension.FrameHandler]
	// cloud is the first plugin that provides the cloud memory, or nil.
	cloud      extension.CloudMemoryProvider
	embedOnce  sync.Once
	embedCloud plugins.CloudMemory // the embedder Host's session
	started    int                 // plugins whose Start succeeded; Stop runs for these
	stopMu     sync.Mutex
	stopped    bool
}

type hook[H any] struct {
	slot *pluginSlot
	h    H
}

func collect[H any](slots []pluginSlot) []hook[H] {
	var hs []hook[H]
	for i := range slots {
		if h, ok := slots[i].p.(H); ok {
			hs = append(hs, hook[H]{slot: &slots[i], h: h})
		}
	}
	return hs
}

// newHookSet finds every plugin's hooks. It fails when plugins claim frame
// kinds outside the extension range or the same kind.
func newHookSet(s *Server, ps []plugins.Plugin, names []string) (*hookSet, error) {
	slots := make([]pluginSlot, len(ps))
	for i, p := range ps {
		name := fmt.Sprintf("%T", p)
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		slots[i] = pluginSlot{name: name, p: p, log: s.log.With().Str("plugin", name).Logger()}
		slots[i].logs = newHookSampler(slots[i].log)
		warnMisnamedHooks(&slots[i])
	}
	hs := &hookSet{
		s:            s,
		slots:        slots,
		onJoin:       collect[plugins.ServerJoinedHandler](slots),
		onLeft:       collect[plugins.ServerLeftHandler](slots),
		onServerConn: collect[plugins.ServerConnectedHandler](slots),
		onServerDisc: collect[plugins.ServerDisconnectedHandler](slots),
		onServerMsg:  collect[plugins.ServerMessageHandler](slots),
		onAuth:       collect[plugins.ClientAuthenticator](slots),
		onClientConn: collect[plugins.ClientConnectedHandler](slots),
		onClientMsg:  collect[plugins.ClientMessageHandler](slots),
		onClientDisc: collect[plugins.ClientDisconnectedHandler](slots),
		onClientFail: collect[plugins.ClientSendFailedHandler](slots),
		onPeers:      collect[extension.PeersHandler](slots),
		filters:      collect[plugins.CloudFilter](slots),
	}
	for _, h := range collect[extension.FrameHandler](slots) {
		for _, k := range h.h.FrameKinds() {
			if !protocol.IsExtensionKind(k) {
				return nil, fmt.Errorf("%w: plugin %q claims frame kind %d; plugins claim kinds %d to %d",
					extension.ErrFrameKind, h.slot.name, k, protocol.FirstExtensionKind, protocol.LastExtensionKind)
			}
			i := k - protocol.FirstExtensionKind
			if prev := hs.frames[i]; prev != nil && prev.slot != h.slot {
				return nil, fmt.Errorf("%w: plugins %q and %q both claim frame kind %s",
					extension.ErrFrameKind, prev.slot.name, h.slot.name, k)
			}
			hs.frames[i] = &h
		}
	}
	for i := range slots {
		if p, ok := slots[i].p.(extension.CloudMemoryProvider); ok {
			hs.cloud = p
			break
		}
	}
	return hs, nil
}

// warnMisnamedHooks logs each method of slot's plugin that is named like
// a hook but does not implement it, which the server would otherwise
// silently never call.
func warnMisnamedHooks(slot *pluginSlot) {
	for _, m := range extension.MisnamedHooks(slot.p) {
		slot.log.Warn().Str("method", m.Method).Str("hook", m.Hook).Str("has", m.Has).Str("want", m.Want).
			Msg("plugin method is named like a hook but does not implement it; the server never calls it")
	}
}

// failed returns the error event for a failure of hook, with the hook
// named, or nil (on which zerolog's methods do nothing) when the sampler
// drops it: a hook that fails for every message logs a few lines and a
// count, not a line per message.
func (p *pluginSlot) failed(hook string) *zerolog.Event {
	if !p.logs.Allow(hook) {
		return nil
	}
	return p.log.Error().Str("hook", hook)
}

// newHookSampler returns the sampler of a plugin's hook failures.
func newHookSampler(log zerolog.Logger) *logsample.Sampler {
	return &logsample.Sampler{Report: func(hook string, n int) {
		log.Error().Str("hook", hook).Int("suppressed", n).Dur("window", logsample.DefaultWindow).
			Msg("more hook failures than were logged")
	}}
}

// call runs one hook, recovering a panic. Errors and panics are logged and
// counted; the returned error is for Start, whose failure is fatal to
// startup.
func (hs *hookSet) call(slot *pluginSlot, hookName string, f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			hs.failed(slot, hookName, true)
			err = fmt.Errorf("plugin %q: %s panicked: %v", slot.name, hookName, v)
			slot.failed(hookName).Interface("panic", v).Bytes("stack", debug.Stack()).Msg("plugin hook panicked")
		}
	}()
	if err = f(); err != nil {
		hs.failed(slot, hookName, false)
		slot.failed(hookName).Err(err).Msg("plugin hook failed")
		err = fmt.Errorf("plugin %q: %s: %w", slot.name, hookName, err)
	}
	return err
}

// start runs every Start hook in order. On failure the plugins already
// started are stopped and the error returned.
func (hs *hookSet) start(ctx context.Context) error {
	for i := range hs.slots {
		slot := &hs.slots[i]
		if st, ok := slot.p.(plugins.Starter); ok {
			h := &host{s: hs.s, log: slot.log, slot: slot}
			if err := hs.call(slot, "Start", func() error { return st.Start(ctx, h) }); err != nil {
				hs.stop(ctx)
				return err
			}
		}
		hs.started = i + 1
	}
	return nil
}

// stop runs the Stop hooks of started plugins in reverse order, once.
func (hs *hookSet) stop(ctx context.Context) {
	hs.stopMu.Lock()
	defer hs.stopMu.Unlock()
	if hs.stopped {
		return
	}
	hs.stopped = true
	for i := hs.started - 1; i >= 0; i-- {
		slot := &hs.slots[i]
		if st, ok := slot.p.(plugins.Stopper); ok {
			_ = hs.call(slot, "Stop", func() error { return st.Stop(ctx) })
		}
	}
}

func (hs *hookSet) joined(r *remote) {
	for _, h := range hs.onJoin {
		_ = hs.call(h.slot, "ServerJoined", func() error { return h.h.ServerJoined(r) })
	}
}

func (hs *hookSet) left(r *remote) {
	for _, h := range hs.onLeft {
		_ = hs.call(h.slot, "ServerLeft", func() error { return h.h.ServerLeft(r) })
	}
}

func (hs *hookSet) connected(r *remote) {
	for _, h := range hs.onServerConn {
		_ = hs.call(h.slot, "ServerConnected", func() error { return h.h.ServerConnected(r) })
	}
}

func (hs *hookSet) disconnected(r *remote, le *plugins.CloseError) {
	for _, h := range hs.onServerDisc {
		_ = hs.call(h.slot, "ServerDisconnected", func() error { return h.h.ServerDisconnected(r, le) })
	}
}

// message is on the hot path: one call per plugin message received.
func (hs *hookSet) message(r *remote, m plugins.Message) {
	for i := range hs.onServerMsg {
		h := &hs.onServerMsg[i]
		hs.messageOne(h, r, m)
	}
}

func (hs *hookSet) messageOne(h *hook[plugins.ServerMessageHandler], r *remote, m plugins.Message) {
	defer func() {
		if v := recover(); v != nil {
			hs.failed(h.slot, "ServerMessage", true)
			h.slot.failed("ServerMessage").Str("peer", r.id).Interface("panic", v).
				Bytes("stack", debug.Stack()).Msg("plugin hook panicked")
		}
	}()
	if err := h.h.ServerMessage(r, m); err != nil {
		hs.failed(h.slot, "ServerMessage", false)
		h.slot.failed("ServerMessage").Str("peer", r.id).Err(err).Msg("plugin hook failed")
	}
}

// authenticate asks every authenticator; the first refusal wins. A panic
// refuses too.
func (hs *hookSet) authenticate(info plugins.ClientInfo) error {
	for _, h := range hs.onAuth {
		var refusal error
		err := hs.call(h.slot, "Authenticate", func() error {
			refusal = h.h.Authenticate(info)
			return nil
		})
		if err != nil {
			return errors.New("authentication failed")
		}
		if refusal != nil {
			return refusal
		}
	}
	return nil
}

func (hs *hookSet) clientConnected(c *session) {
	for _, h := range hs.onClientConn {
		_ = hs.call(h.slot, "ClientConnected", func() error { return h.h.ClientConnected(c) })
	}
}

func (hs *hookSet) clientDisconnected(c *session, le *plugins.CloseError) {
	for _, h := range hs.onClientDisc {
		_ = hs.call(h.slot, "ClientDisconnected", func() error { return h.h.ClientDisconnected(c, le) })
	}
}

func (hs *hookSet) clientSendFailed(ref plugins.ClientRef, err error) {
	for _, h := range hs.onClientFail {
		_ = hs.call(h.slot, "ClientSendFailed", func() error { return h.h.ClientSendFailed(ref, err) })
	}
}

// clientMessage is on the hot path: one call per client message.
func (hs *hookSet) clientMessage(c *session, m plugins.Message) {
	for i := range hs.onClientMsg {
		hs.clientMessageOne(&hs.onClientMsg[i], c, m)
	}
}

func (hs *hookSet) clientMessageOne(h *hook[plugins.ClientMessageHandler], c *session, m plugins.Message) {
	defer func() {
		if v := recover(); v != nil {
			hs.failed(h.slot, "ClientMessage", true)
			h.slot.failed("ClientMessage").Str("client", c.ref.String()).Interface("panic", v).
				Bytes("stack", debug.Stack()).Msg("plugin hook panicked")
		}
	}()
	if err := h.h.ClientMessage(c, m); err != nil {
		hs.failed(h.slot, "ClientMessage", false)
		h.slot.failed("ClientMessage").Str("client", c.ref.String()).Err(err).Msg("plugin hook failed")
	}
}
