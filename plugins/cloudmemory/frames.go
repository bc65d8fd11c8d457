package cloudmemory

import (
	"fmt"
	"time"

	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
)

// Frames from the replicas: answers, notices and key hand-overs.

// FrameKinds implements extension.FrameHandler.
func (c *Caller) FrameKinds() []protocol.Kind {
	return []protocol.Kind{
		protocol.KindCloudPost, protocol.KindCloudRelease, protocol.KindCloudGet, protocol.KindCloudUnsubscribe,
		protocol.KindCloudSrvReply, protocol.KindCloudSrvResult, protocol.KindCloudSrvNotify, protocol.KindCloudSrvMoved,
	}
}

// ServerFrame implements extension.FrameHandler: answers and notifications
// from replicas.
func (c *Caller) ServerFrame(rs plugins.RemoteServer, f protocol.Frame) error {
	if !c.isCloud(rs) {
		return fmt.Errorf("cloud memory: %s from %s, which is not a replica of %q", f.Kind, rs.ID(), c.group)
	}
	switch f.Kind {
	case protocol.KindCloudSrvReply:
		var m cloudwire.SrvReply
		if err := m.Decode(f.Payload); err != nil {
			return err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		cl := c.takeCallLocked(m.Req, rs)
		if cl == nil {
			return nil
		}
		switch cl.kind {
		case callPost:
			c.onPostReplyLocked(m.Req, cl, m.Code, m.Message)
		case callRelease:
			cl.rel.reply(m.Code, m.Message)
			c.releaseDoneLocked(cl.rel)
		}
	case protocol.KindCloudSrvResult:
		var m cloudwire.SrvResult
		if err := decodeWith(&c.strs, &m, f.Payload); err != nil {
			return err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		cl := c.takeCallLocked(m.Req, rs)
		if cl == nil {
			return nil
		}
		switch cl.kind {
		case callGet:
			cl.part.op.partResultLocked(&cl.part, &m)
		case callResync:
			c.onResyncLocked(m.Req, cl, &m)
		}
	case protocol.KindCloudSrvNotify:
		var m cloudwire.Notice
		if err := decodeWith(&c.strs, &m, f.Payload); err != nil {
			return err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.onNoticeLocked(rs, f.Payload, &m)
	case protocol.KindCloudSrvMoved:
		var m cloudwire.SrvMoved
		if err := m.Decode(f.Payload); err != nil {
			return err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.onMovedLocked(rs, m.Keys)
	default:
		return fmt.Errorf("cloud memory: unexpected %s from a replica", f.Kind)
	}
	return nil
}

// takeCallLocked removes and returns the pending call req, if it went to
// rs; an answer from any other replica (or a late one) is ignored.
func (c *Caller) takeCallLocked(req uint64, rs plugins.RemoteServer) *call {
	cl := c.calls[req]
	if cl == nil || cl.to.id != rs.ID() {
		return nil
	}
	delete(c.calls, req)
	return cl
}

// onMovedLocked: the replica dropped our rows and subscriptions under
// keys (it no longer owns them); place them again. Its replica set
// changed: it waits for this server's confirmation again, even when no
// key of ours moved (keys is then empty).
func (c *Caller) onMovedLocked(rs plugins.RemoteServer, keys []key) {
	rep := c.replicas[rs.ID()]
	if rep == nil || rep.rs != rs {
		return
	}
	rep.confirmed = 0
	now := time.Now()
	moved := make(map[key]struct{}, len(keys))
	for _, k := range keys {
		moved[k] = struct{}{}
		if ks := c.subs[k]; ks != nil && ks.placed == rep.at {
			ks.placed = place{}
			c.delayResyncLocked(ks, now)
		}
	}
	for id, r := range c.rows {
		if _, ok := moved[id.k]; ok && r.placed == rep.at {
			r.placed = place{}
			c.unplaceLocked(r, now)
		}
	}
	c.kick()
}
