package openworld

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/cloudrift/cloudrift/plugins"
)

// Chat runs on the social servers. It relays every chat line a gateway
// sends it (TagChat) to every server of every downstream group linked to it
// right now (TagChatLine), the sender's included; each gateway hands the
// line to each of its players. So chat reaches the players of every client
// server, whatever world server they are on.
type Chat struct {
	host    plugins.Host // set by Start, before any message arrives
	relayed atomic.Uint64
}

var (
	_ plugins.Starter              = (*Chat)(nil)
	_ plugins.ServerMessageHandler = (*Chat)(nil)
)

// Start keeps the host for the fan-out.
func (c *Chat) Start(_ context.Context, h plugins.Host) error {
	c.host = h
	return nil
}

// ServerMessage relays a chat line to every linked downstream server.
func (c *Chat) ServerMessage(s plugins.RemoteServer, m plugins.Message) error {
	if m.Tag != TagChat {
		return fmt.Errorf("chat: unexpected tag %d from %s", m.Tag, s.ID())
	}
	line, err := ParseChatLine(m.Payload)
	if err != nil {
		return err
	}
	if line.From.Server != s.ID() {
		return fmt.Errorf("chat: %s sent a line of %s, a player of another server", s.ID(), line.From)
	}
	for _, g := range c.host.RemoteGroups() {
		if g.Direction() != plugins.Downstream {
			continue
		}
		for _, to := range g.Servers() {
			if to.State() == plugins.StateConnected && to.Send(TagChatLine, m.Payload) == nil {
				c.relayed.Add(1)
			}
		}
	}
	return nil
}

// Relayed returns how many chat lines this server has sent to client
// servers. It is safe for concurrent use.
func (c *Chat) Relayed() uint64 { return c.relayed.Load() }
