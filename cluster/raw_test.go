package cluster_test

import (
	"net"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/protocol"
)

// This file plays a peer server by hand, frame by frame, for the tests of
// what a server does with a peer that misbehaves.

// rawConn dials addr (host:port) as a bare TCP client.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// closeReason reads until a Close frame and returns its reason, or fails.
func closeReason(t *testing.T, c net.Conn) protocol.Reason {
	t.Helper()
	rd := protocol.NewReader(c, protocol.DefaultMaxFrame)
	for {
		f, err := rd.Next()
		if err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		if f.Kind == protocol.KindClose {
			var cl protocol.Close
			if err := cl.Decode(f.Payload); err != nil {
				t.Fatal(err)
			}
			return cl.Reason
		}
	}
}

// hello returns the body of a Hello from server id of group in system sys.
func hello(sys, group, id string, inc uint64) []byte {
	nonce, _ := protocol.NewNonce()
	h := protocol.Hello{Version: protocol.Version, System: sys, Group: group, ServerID: id, Incarnation: inc, Nonce: nonce}
	return h.AppendTo(nil)
}

// helloFrame is hello as a frame, ready to write.
func helloFrame(sys, group, id string) []byte {
	return protocol.AppendFrame(nil, protocol.KindHello, 0, hello(sys, group, id, 7))
}

// authenticate sends the Hello hb on c, reads the acceptor's Challenge,
// and answers it with an Auth keyed by secret: the dialer proves first.
// It returns the reader on c and the Challenge's encoding, which both MACs
// cover.
func authenticate(t *testing.T, c net.Conn, hb []byte, secret string) (*protocol.Reader, []byte) {
	t.Helper()
	c.Write(protocol.AppendFrame(nil, protocol.KindHello, 0, hb))
	rd := protocol.NewReader(c, protocol.DefaultMaxFrame)
	f, err := rd.Next()
	if err != nil || f.Kind != protocol.KindChallenge {
		t.Fatalf("want challenge, got %v %v", f.Kind, err)
	}
	var ch protocol.Challenge
	if err := ch.Decode(f.Payload); err != nil {
		t.Fatal(err)
	}
	body := ch.AppendTo(nil)
	auth := protocol.Auth{MAC: protocol.AuthMAC([]byte(secret), hb, body)}
	c.Write(protocol.AppendFrame(nil, protocol.KindAuth, 0, auth.AppendTo(nil)))
	return rd, body
}

// rawLink completes a real handshake with the server at addr as server id
// of group g1 with the test secret, and returns the connection and its
// reader.
func rawLink(t *testing.T, addr, id string, inc uint64) (net.Conn, *protocol.Reader) {
	t.Helper()
	c := rawConn(t, addr)
	hb := hello("test", "g1", id, inc)
	rd, body := authenticate(t, c, hb, testSecret)
	f, err := rd.Next()
	if err != nil || f.Kind != protocol.KindWelcome {
		t.Fatalf("want welcome: %v %v", f.Kind, err)
	}
	var w protocol.Welcome
	if err := w.Decode(f.Payload); err != nil || !protocol.VerifyMAC(w.MAC, protocol.WelcomeMAC([]byte(testSecret), hb, body)) {
		t.Fatalf("acceptor MAC does not verify: %v", err)
	}
	return c, rd
}
