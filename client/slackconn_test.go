package client

import (
	"net"
	"testing"
	"time"
)

// deadlineConn records the write deadlines set on it.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.set = append(c.set, t)
	return nil
}

func TestSlackConnSetsFewDeadlinesNeverEarly(t *testing.T) {
	under := &deadlineConn{}
	c := &slackConn{Conn: under, slack: time.Second}
	base := time.Now()
	asked := []time.Duration{0, 100 * time.Millisecond, 900 * time.Millisecond, time.Second, 1500 * time.Millisecond}
	for _, d := range asked {
		t0 := base.Add(10*time.Second + d)
		if err := c.SetWriteDeadline(t0); err != nil {
			t.Fatal(err)
		}
		if got := under.set[len(under.set)-1]; got.Before(t0) || got.Sub(t0) > time.Second {
			t.Fatalf("asked %s, the socket's deadline is %s later", t0.Format(time.StampMilli), got.Sub(t0))
		}
	}
	if len(under.set) != 2 { // the first, and the one past its slack
		t.Fatalf("%d deadlines set for %d asked, want 2", len(under.set), len(asked))
	}
	// An earlier deadline (a close frame's) is set; so is none.
	early := base.Add(time.Second)
	c.SetWriteDeadline(early)
	if got := under.set[len(under.set)-1]; got.Before(early) || got.Sub(early) > time.Second {
		t.Fatalf("an earlier deadline was not set: %v", under.set)
	}
	c.SetWriteDeadline(time.Time{})
	c.SetWriteDeadline(time.Time{})
	if n := len(under.set); n != 4 || !under.set[n-1].IsZero() {
		t.Fatalf("clearing the deadline: %v", under.set)
	}
}
