package protocol

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func testHello() Hello {
	return Hello{
		Version:     Version,
		System:      "openworld",
		Group:       "world",
		ServerID:    "world-1",
		Incarnation: 0x0102030405060708,
		Nonce:       [32]byte{1, 2, 3, 31: 0xFF},
	}
}

func testChallenge() Challenge {
	return Challenge{
		Version:     Version,
		ServerID:    "cloud-2",
		Group:       "cloud",
		Incarnation: 0xFEDCBA9876543210,
		Nonce:       [32]byte{9, 8, 7, 31: 0x11},
	}
}

// codec is what every handshake message implements, for table tests.
type codec interface {
	AppendTo([]byte) []byte
	Decode([]byte) error
}

func TestHandshakeRoundTrip(t *testing.T) {
	h := testHello()
	h.System = "système-é" // multi-byte UTF-8
	h.Group = strings.Repeat("g", MaxNameLen)
	var h2 Hello
	if err := h2.Decode(h.AppendTo(nil)); err != nil || h2 != h {
		t.Fatalf("Hello round trip: %+v, %v", h2, err)
	}
	var empty Hello
	if err := empty.Decode((&Hello{}).AppendTo(nil)); err != nil || empty != (Hello{}) {
		t.Fatalf("zero Hello round trip: %+v, %v", empty, err)
	}

	c := testChallenge()
	var c2 Challenge
	if err := c2.Decode(c.AppendTo(nil)); err != nil || c2 != c {
		t.Fatalf("Challenge round trip: %+v, %v", c2, err)
	}

	a := Auth{MAC: [32]byte{5, 31: 6}}
	var a2 Auth
	if err := a2.Decode(a.AppendTo(nil)); err != nil || a2 != a {
		t.Fatalf("Auth round trip: %+v, %v", a2, err)
	}

	for _, cl := range []Close{
		{},
		{Reason: ReasonAuth, Message: "wrong secret"},
		{Reason: Reason(999), Message: "ünïcödé"},
		{Reason: ReasonShutdown, Message: strings.Repeat("m", MaxCloseMessage)},
	} {
		var cl2 Close
		if err := cl2.Decode(cl.AppendTo(nil)); err != nil || cl2 != cl {
			t.Fatalf("Close round trip: %+v, %v", cl2, err)
		}
	}
}

func TestHandshakeLayout(t *testing.T) {
	h := Hello{Version: 1, System: "s", Group: "gg", ServerID: "", Incarnation: 2, Nonce: [32]byte{3}}
	want := []byte{0, 1, 1, 's', 2, 'g', 'g', 0, 0, 0, 0, 0, 0, 0, 0, 2, 3}
	want = append(want, make([]byte, 31)...)
	if got := h.AppendTo(nil); !bytes.Equal(got, want) {
		t.Fatalf("Hello = %x\nwant    %x", got, want)
	}
	c := Challenge{Version: 1, ServerID: "a", Group: "b", Incarnation: 2, Nonce: [32]byte{3}}
	body := []byte{0, 1, 1, 'a', 1, 'b', 0, 0, 0, 0, 0, 0, 0, 2, 3}
	body = append(body, make([]byte, 31)...)
	if got := c.AppendTo([]byte("x")); !bytes.Equal(got, append([]byte("x"), body...)) {
		t.Fatalf("Challenge = %x", got)
	}
	cl := Close{Reason: ReasonReplaced, Message: "hi"}
	if got := cl.AppendTo(nil); !bytes.Equal(got, []byte{0, 11, 0, 2, 'h', 'i'}) {
		t.Fatalf("Close = %x", got)
	}
}

func TestHandshakeDecodeRejects(t *testing.T) {
	h, c := testHello(), testChallenge()
	a := Auth{MAC: [32]byte{1}}
	cl := Close{Reason: ReasonProtocol, Message: "bad frame"}
	cases := []struct {
		name string
		enc  []byte
		dec  func() codec
	}{
		{"hello", h.AppendTo(nil), func() codec { return &Hello{} }},
		{"challenge", c.AppendTo(nil), func() codec { return &Challenge{} }},
		{"auth", a.AppendTo(nil), func() codec { return &Auth{} }},
		{"close", cl.AppendTo(nil), func() codec { return &Close{} }},
	}
	for _, tc := range cases {
		for i := range len(tc.enc) {
			if err := tc.dec().Decode(tc.enc[:i]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s truncated to %d bytes: %v, want ErrMalformed", tc.name, i, err)
			}
		}
		trailing := append(append([]byte{}, tc.enc...), 0)
		if err := tc.dec().Decode(trailing); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s with a trailing byte: %v, want ErrMalformed", tc.name, err)
		}
		if err := tc.dec().Decode(tc.enc); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
}

func TestHandshakeDecodeLeavesValueOnError(t *testing.T) {
	h := testHello()
	before := h
	if err := h.Decode([]byte{0, 1, 5, 'a'}); err == nil {
		t.Fatal("truncated Hello decoded")
	}
	if h != before {
		t.Fatalf("failed Decode changed the Hello: %+v", h)
	}
	cl := Close{Reason: ReasonSlowPeer, Message: "x"}
	if err := cl.Decode([]byte{0, 1, 0, 5, 'a'}); err == nil || cl.Message != "x" || cl.Reason != ReasonSlowPeer {
		t.Fatalf("failed Decode changed the Close: %+v, %v", cl, err)
	}
}

func TestHandshakeInvalidStrings(t *testing.T) {
	// Hello with an invalid UTF-8 group.
	b := []byte{0, 1, 1, 's', 2, 0xFF, 0xFE, 1, 'x'}
	b = append(b, make([]byte, 8+32)...)
	var h Hello
	if err := h.Decode(b); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("invalid UTF-8 group: %v", err)
	}
	b[5], b[6] = 'o', 'k'
	if err := h.Decode(b); err != nil || h.Group != "ok" {
		t.Fatalf("fixed Hello: %+v, %v", h, err)
	}

	// Challenge with an invalid UTF-8 server ID.
	c := []byte{0, 1, 1, 0xC0, 0}
	c = append(c, make([]byte, 8+64)...)
	var ch Challenge
	if err := ch.Decode(c); !errors.Is(err, ErrMalformed) {
		t.Fatalf("invalid UTF-8 server ID: %v", err)
	}

	// Close message over its limit, with the bytes present.
	msg := strings.Repeat("a", MaxCloseMessage+1)
	cb := binary.BigEndian.AppendUint16([]byte{0, 1}, uint16(len(msg)))
	cb = append(cb, msg...)
	var cl Close
	if err := cl.Decode(cb); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("long Close message: %v", err)
	}
	cb = []byte{0, 1, 0, 2, 'a', 0x80}
	if err := cl.Decode(cb); !errors.Is(err, ErrMalformed) {
		t.Fatalf("invalid UTF-8 Close message: %v", err)
	}
}

func TestHandshakeDecodedStringsDoNotAlias(t *testing.T) {
	h := testHello()
	b := h.AppendTo(nil)
	var h2 Hello
	if err := h2.Decode(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'Z'
	}
	if h2 != h {
		t.Fatalf("Hello changed with its input: %+v", h2)
	}
	cl := Close{Reason: ReasonIO, Message: "reset by peer"}
	cb := cl.AppendTo(nil)
	var cl2 Close
	if err := cl2.Decode(cb); err != nil {
		t.Fatal(err)
	}
	for i := range cb {
		cb[i] = 'Z'
	}
	if cl2 != cl {
		t.Fatalf("Close changed with its input: %+v", cl2)
	}
}

func TestAppendToTruncates(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes, 2 per rune
	h := Hello{System: long, Group: strings.Repeat("g", 300)}
	var h2 Hello
	if err := h2.Decode(h.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	if len(h2.System) != 254 || !strings.HasPrefix(long, h2.System) || !utf8.ValidString(h2.System) {
		t.Fatalf("System cut to %d bytes", len(h2.System))
	}
	if len(h2.Group) != MaxNameLen {
		t.Fatalf("Group cut to %d bytes", len(h2.Group))
	}

	msg := "x" + strings.Repeat("€", 400) // 1 + 1200 bytes, 3 per rune
	cl := Close{Reason: ReasonProtocol, Message: msg}
	var cl2 Close
	if err := cl2.Decode(cl.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	if len(cl2.Message) != 1+3*341 || !strings.HasPrefix(msg, cl2.Message) {
		t.Fatalf("Message cut to %d bytes", len(cl2.Message))
	}

	bad := Close{Reason: ReasonIO, Message: "peer \xff\xfe said"}
	if err := cl2.Decode(bad.AppendTo(nil)); err != nil {
		t.Fatalf("Close with invalid UTF-8 did not encode to something decodable: %v", err)
	}
	if cl2.Message != "peer \uFFFD said" {
		t.Fatalf("Message = %q", cl2.Message)
	}
}

func TestPeekVersion(t *testing.T) {
	h := testHello()
	h.Version = 0x0203
	if v, ok := PeekVersion(h.AppendTo(nil)); !ok || v != 0x0203 {
		t.Fatalf("PeekVersion(Hello) = %d, %v", v, ok)
	}
	c := testChallenge()
	c.Version = 9
	if v, ok := PeekVersion(c.AppendTo(nil)); !ok || v != 9 {
		t.Fatalf("PeekVersion(Challenge) = %d, %v", v, ok)
	}
	if _, ok := PeekVersion([]byte{1}); ok {
		t.Fatal("PeekVersion of one byte succeeded")
	}
}

// referenceMAC computes the documented transcript MAC independently.
func referenceMAC(secret []byte, label string, hello, body []byte) [32]byte {
	var msg []byte
	msg = append(msg, label...)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(hello)))
	msg = append(msg, hello...)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(body)))
	msg = append(msg, body...)
	m := hmac.New(sha256.New, secret)
	m.Write(msg)
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

func TestMACs(t *testing.T) {
	secret := []byte("system secret")
	h, c := testHello(), testChallenge()
	hello, body := h.AppendTo(nil), c.AppendTo(nil)

	wm := WelcomeMAC(secret, hello, body)
	am := AuthMAC(secret, hello, body)
	if wm != referenceMAC(secret, "cloudrift/2 acceptor\x00", hello, body) {
		t.Fatal("WelcomeMAC does not match the documented construction")
	}
	if am != referenceMAC(secret, "cloudrift/2 dialer\x00", hello, body) {
		t.Fatal("AuthMAC does not match the documented construction")
	}
	if VerifyMAC(wm, am) {
		t.Fatal("acceptor and dialer MACs are equal")
	}
	if VerifyMAC(wm, WelcomeMAC([]byte("other secret"), hello, body)) {
		t.Fatal("WelcomeMAC ignores the secret")
	}
	if VerifyMAC(am, AuthMAC([]byte("other secret"), hello, body)) {
		t.Fatal("AuthMAC ignores the secret")
	}
	if !VerifyMAC(wm, WelcomeMAC(secret, hello, body)) {
		t.Fatal("WelcomeMAC is not deterministic")
	}
	// Length prefixes keep the split between hello and body in the MAC.
	joined := append(append([]byte{}, hello...), body...)
	if VerifyMAC(WelcomeMAC(secret, joined[:len(hello)+1], joined[len(hello)+1:]), wm) {
		t.Fatal("moving a byte from body to hello keeps the MAC")
	}
	// Any change to the transcript changes the MAC.
	h.Nonce[5] ^= 1
	if VerifyMAC(wm, WelcomeMAC(secret, h.AppendTo(nil), body)) {
		t.Fatal("WelcomeMAC ignores the dialer's nonce")
	}
	c.Nonce[5] ^= 1
	if VerifyMAC(am, AuthMAC(secret, hello, c.AppendTo(nil))) {
		t.Fatal("AuthMAC ignores the acceptor's nonce")
	}
}

// TestHandshakeFlow runs both sides of a handshake through frames and checks
// that a wrong secret fails on either side, and that the acceptor sends no
// MAC before the dialer's Auth verified.
func TestHandshakeFlow(t *testing.T) {
	run := func(dialerSecret, acceptorSecret []byte) (authOK, welcomeOK bool) {
		t.Helper()
		// Dialer → Hello.
		dn, err := NewNonce()
		if err != nil {
			t.Fatal(err)
		}
		hello := Hello{Version: Version, System: "openworld", Group: "world", ServerID: "w1", Incarnation: 7, Nonce: dn}
		wire := AppendFrame(nil, KindHello, 0, hello.AppendTo(nil))

		// Acceptor: decode Hello, answer Challenge (no MAC).
		f, n, err := Decode(wire, MaxHandshakeFrame)
		if err != nil || n != len(wire) || f.Kind != KindHello || f.Tag != 0 {
			t.Fatalf("hello frame: %v", err)
		}
		helloWire := f.Payload
		var gotHello Hello
		if err := gotHello.Decode(helloWire); err != nil || gotHello != hello {
			t.Fatalf("hello: %+v %v", gotHello, err)
		}
		an, err := NewNonce()
		if err != nil {
			t.Fatal(err)
		}
		ch := Challenge{Version: Version, ServerID: "c1", Group: "cloud", Incarnation: 9, Nonce: an}
		chWire := ch.AppendTo(nil)
		wire = AppendFrame(nil, KindChallenge, 0, chWire)

		// Dialer: decode Challenge, prove itself with Auth.
		f, _, err = Decode(wire, MaxHandshakeFrame)
		if err != nil || f.Kind != KindChallenge {
			t.Fatalf("challenge frame: %v", err)
		}
		var gotCh Challenge
		if err := gotCh.Decode(f.Payload); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gotCh.AppendTo(nil), f.Payload) {
			t.Fatal("the decoded Challenge re-encodes differently from the received bytes")
		}
		sentHello := hello.AppendTo(nil)
		auth := Auth{MAC: AuthMAC(dialerSecret, sentHello, gotCh.AppendTo(nil))}
		wire = AppendFrame(nil, KindAuth, 0, auth.AppendTo(nil))

		// Acceptor: check Auth; only then answer Welcome.
		f, _, err = Decode(wire, MaxHandshakeFrame)
		if err != nil || f.Kind != KindAuth {
			t.Fatalf("auth frame: %v", err)
		}
		var gotAuth Auth
		if err := gotAuth.Decode(f.Payload); err != nil {
			t.Fatal(err)
		}
		authOK = VerifyMAC(gotAuth.MAC, AuthMAC(acceptorSecret, helloWire, chWire))
		if !authOK {
			return false, false
		}
		w := Welcome{MAC: WelcomeMAC(acceptorSecret, helloWire, chWire)}
		wire = AppendFrame(nil, KindWelcome, 0, w.AppendTo(nil))

		// Dialer: check Welcome.
		f, _, err = Decode(wire, MaxHandshakeFrame)
		if err != nil || f.Kind != KindWelcome {
			t.Fatalf("welcome frame: %v", err)
		}
		var gotW Welcome
		if err := gotW.Decode(f.Payload); err != nil {
			t.Fatal(err)
		}
		welcomeOK = VerifyMAC(gotW.MAC, WelcomeMAC(dialerSecret, sentHello, gotCh.AppendTo(nil)))
		return authOK, welcomeOK
	}
	if a, w := run([]byte("s3cret"), []byte("s3cret")); !a || !w {
		t.Fatalf("same secret: auth ok %v, welcome ok %v", a, w)
	}
	if a, w := run([]byte("s3cret"), []byte("other")); a || w {
		t.Fatalf("different secrets: auth ok %v, welcome ok %v", a, w)
	}
}

// TestMaxHandshakeFrame checks that the largest handshake messages fit the
// handshake frame limit.
func TestMaxHandshakeFrame(t *testing.T) {
	long := strings.Repeat("n", MaxNameLen)
	h := Hello{System: long, Group: long, ServerID: long}
	cl := Close{Message: strings.Repeat("m", MaxCloseMessage)}
	for _, p := range [][]byte{h.AppendTo(nil), cl.AppendTo(nil), (&Challenge{ServerID: long, Group: long}).AppendTo(nil)} {
		wire := AppendFrame(nil, KindHello, 0, p)
		if _, n, err := Decode(wire, MaxHandshakeFrame); err != nil || n != len(wire) {
			t.Fatalf("a %d-byte handshake payload does not fit MaxHandshakeFrame: %v", len(p), err)
		}
	}
}

func TestNewNonce(t *testing.T) {
	a, err := NewNonce()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewNonce()
	if err != nil {
		t.Fatal(err)
	}
	if a == b || a == ([32]byte{}) {
		t.Fatalf("nonces %x and %x", a, b)
	}
}
