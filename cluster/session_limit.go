package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
)

// The per-client rate limit. Every frame a client sends (data, ping, pong)
// spends one token of its bucket (clients.rate per second, clients.burst at
// once). A frame over the budget is refused, not served: a cloud-memory
// operation is answered with cloud.CodeRateLimited, a user message or
// another extension message is dropped, a ping goes unanswered and a pong
// does not extend the read deadline. Each refusal spends one token of a
// second bucket, the abuse allowance: abuseFactor×burst at once, refilled
// at the same rate. A client that exhausts it too is not slipping over the
// limit but flooding, and its session ends with ReasonRateLimited.

// abuseFactor sets the abuse allowance: how many refused frames, relative
// to the burst, a client may send before its session ends.
const abuseFactor = 4

// errRateLimited ends a read when a control frame exhausted the abuse
// allowance; the session is already closing with ReasonRateLimited.
var errRateLimited = errors.New("cluster: client over its rate limit")

// newLimiters returns a client's message bucket and abuse allowance.
func newLimiters(perSecond, burst int) (budget, abuse *rate.Limiter) {
	return rate.NewLimiter(rate.Limit(perSecond), burst), rate.NewLimiter(rate.Limit(perSecond), abuseFactor*burst)
}

// spend takes one frame from the client's budget. It reports false for a
// frame over the budget, which the caller refuses; when that frame also
// exhausted the abuse allowance, the session is closing and end is true.
func (c *session) spend() (ok, end bool) {
	if c.limiter.Allow() {
		return true, false
	}
	if c.abuse.Allow() {
		return false, false
	}
	cfg := c.h.cfg
	c.close(protocol.ReasonRateLimited, fmt.Sprintf("more than %d messages/s (burst %d), and %d more over the limit",
		cfg.Rate, cfg.Burst, abuseFactor*cfg.Burst), nil)
	return false, true
}

// refuseOverBudget answers a frame over the client's budget: a cloud
// operation gets CodeRateLimited, anything else is dropped.
func (c *session) refuseOverBudget(f protocol.Frame) {
	if len(f.Payload) < 4 { // every cloud request starts with its u32 request ID
		return
	}
	req := binary.BigEndian.Uint32(f.Payload)
	msg := fmt.Sprintf("more than %d operations/s (burst %d); retry later", c.h.cfg.Rate, c.h.cfg.Burst)
	var kind plugins.CloudOpKind
	switch f.Kind {
	case protocol.KindCloudPost:
		kind = plugins.CloudOpPost
	case protocol.KindCloudRelease:
		kind = plugins.CloudOpRelease
	case protocol.KindCloudUnsubscribe:
		kind = plugins.CloudOpUnsubscribe
	case protocol.KindCloudGet:
		kind = plugins.CloudOpGet
	default:
		return
	}
	if kind == plugins.CloudOpGet {
		r := cloudwire.Result{Req: req, Code: cloud.CodeRateLimited, Message: msg}
		_ = c.sendFrame(protocol.KindCloudResult, 0, r.AppendTo(nil))
	} else {
		r := cloudwire.Reply{Req: req, Code: cloud.CodeRateLimited, Message: msg}
		_ = c.sendFrame(protocol.KindCloudReply, 0, r.AppendTo(nil))
	}
	// Counted with the clients' cloud operations, as the cloud memory
	// counts those it answers: a rate limit is one of their outcomes.
	c.h.s.clientCloudMeter.recordCode(kind, time.Now(), cloud.CodeRateLimited)
}

// limitControlFrames makes pings and pongs spend the client's budget like
// data frames: a ping over it goes unanswered, a pong over it does not
// extend the read deadline (rt), and exhausting the abuse allowance ends
// the read with errRateLimited.
func (c *session) limitControlFrames(rt time.Duration) {
	c.conn.SetPingHandler(func(data string) error {
		if ok, end := c.spend(); !ok {
			if end {
				return errRateLimited
			}
			return nil
		}
		err := c.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.h.cfg.WriteTimeout.Duration()))
		var ne net.Error
		if err == websocket.ErrCloseSent || (errors.As(err, &ne) && ne.Timeout()) {
			return nil // closing anyway, or a congested socket
		}
		return err
	})
	c.conn.SetPongHandler(func(string) error {
		if ok, end := c.spend(); !ok {
			if end {
				return errRateLimited
			}
			return nil
		}
		c.extendReadDeadline(rt)
		return nil
	})
}
