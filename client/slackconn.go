package client

import (
	"context"
	"net"
	"time"
)

// slackConn is the connection under the WebSocket: it keeps a write
// deadline already set when it ends at most slack past the one asked
// for. gorilla/websocket sets the deadline before every frame it writes,
// and each set re-arms a runtime timer, about 1.5% of the CPU of a busy
// client's requests. A write asked to end by t may so run until t+slack,
// never less than until t.
//
// gorilla calls SetWriteDeadline only while it holds its write lock, so
// until needs no lock of its own.
type slackConn struct {
	net.Conn
	slack time.Duration
	until time.Time // the deadline set on Conn; zero: none
}

// SetWriteDeadline implements net.Conn.
func (c *slackConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		if c.until.IsZero() {
			return nil
		}
		c.until = time.Time{}
		return c.Conn.SetWriteDeadline(t)
	}
	if !c.until.IsZero() && !c.until.Before(t) && c.until.Sub(t) <= c.slack {
		return nil
	}
	c.until = t.Add(c.slack)
	return c.Conn.SetWriteDeadline(c.until)
}

// dialSlack dials TCP connections whose write deadlines have slack.
func dialSlack(slack time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &slackConn{Conn: conn, slack: slack}, nil
	}
}
