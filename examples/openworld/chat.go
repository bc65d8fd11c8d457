package openworld

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/cloudrift/cloudrift/plugins"
)

// Chat runs on the social servers. It relays every chat line a client server
// sends (tag 3) to every server of the sender's group linked to it right now
// (tag 4), the sender included, naming the sender as the line's origin.
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

// ServerMessage relays a chat line to every connected server of the
// sender's group.
func (c *Chat) ServerMessage(s plugins.RemoteServer, m plugins.Message) error {
	if m.Tag != TagChat {
		return fmt.Errorf("chat: unexpected tag %d from %s", m.Tag, s.ID())
	}
	line, err := ParseChat(m.Payload)
	if err != nil {
		return err
	}
	line.Origin = s.ID()
	out, err := AppendChatLine(nil, line)
	if err != nil {
		return err
	}
	g, err := c.host.RemoteGroup(s.Group())
	if err != nil {
		return err
	}
	for _, to := range connected(g) {
		if to.Send(TagChatLine, out) == nil {
			c.relayed.Add(1)
		}
	}
	return nil
}

// Relayed returns how many chat lines this server has sent to client
// servers. It is safe for concurrent use.
func (c *Chat) Relayed() uint64 { return c.relayed.Load() }
