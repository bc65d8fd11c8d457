package protocol

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/cloudrift/cloudrift/protocol/internal/wire"
)

// The link handshake. The dialer sends Hello (KindHello); the acceptor
// answers Challenge (KindChallenge), which carries its nonce and no MAC; the
// dialer proves it holds the secret with Auth (KindAuth), AuthMAC over the
// transcript; the acceptor checks it and only then proves itself with
// Welcome (KindWelcome), WelcomeMAC over the same transcript, which the
// dialer checks. Either side may instead send Close (KindClose) with a
// Reason and end the connection. Handshake frames carry tag 0.
//
// The order is the point: a party that has proved nothing never receives a
// MAC made with the secret. Anyone who can reach a listening port can send
// a Hello, so the acceptor answers it with a nonce only; the dialer, which
// dials only servers the registry lists, is the one who proves first.
//
// Encodings are big-endian and canonical (one encoding per value, which
// Decode enforces), with strings prefixed by their length:
//
//	Hello:     u16 version | str8 system | str8 group | str8 serverID | u64 incarnation | [32] nonce
//	Challenge: u16 version | str8 serverID | str8 group | u64 incarnation | [32] nonce
//	Auth:      [32] mac
//	Welcome:   [32] mac
//	Close:     u16 reason | u16 length | message
//
// Hello and Challenge start with the version in every protocol version, so
// a receiver can read it with PeekVersion before decoding the rest.

// MaxHandshakeFrame is the largest length field a handshake frame needs: a
// Hello with three names of MaxNameLen bytes, or a Close with the longest
// message, plus kind and tag. Readers apply it until the handshake is over,
// so an unauthenticated peer cannot make them hold more.
const MaxHandshakeFrame = 1 << 11

// MaxNameLen is the longest system, group or server ID a handshake carries,
// in bytes.
const MaxNameLen = 255

// MaxCloseMessage is the longest Close message, in bytes.
const MaxCloseMessage = 1024

// Labels that separate the acceptor's MAC from the dialer's, so one can never
// be replayed as the other.
const (
	acceptorLabel = "cloudrift/2 acceptor\x00"
	dialerLabel   = "cloudrift/2 dialer\x00"
)

// Hello is the dialer's first message.
//
// Strings must be valid UTF-8 of at most MaxNameLen bytes: AppendTo cuts a
// longer one at a rune boundary, and the receiver's Decode rejects invalid
// UTF-8. Callers validate names before they reach the wire.
type Hello struct {
	Version     uint16   // protocol version the dialer speaks
	System      string   // system name from the system file
	Group       string   // dialer's group
	ServerID    string   // dialer's server ID
	Incarnation uint64   // random per process start
	Nonce       [32]byte // fresh per handshake (NewNonce)
}

// AppendTo appends the encoded Hello to dst and returns the extended slice.
func (h *Hello) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, h.Version)
	dst = wire.AppendStr8(dst, h.System)
	dst = wire.AppendStr8(dst, h.Group)
	dst = wire.AppendStr8(dst, h.ServerID)
	dst = binary.BigEndian.AppendUint64(dst, h.Incarnation)
	return append(dst, h.Nonce[:]...)
}

// Decode sets h from b, a whole Hello payload. On error, which wraps
// ErrMalformed, h is unchanged. Decoded strings do not alias b.
func (h *Hello) Decode(b []byte) error {
	d := wire.NewDecoder(b, "hello")
	v := Hello{
		Version:     d.U16("version"),
		System:      d.Str8("system"),
		Group:       d.Str8("group"),
		ServerID:    d.Str8("server ID"),
		Incarnation: d.U64("incarnation"),
		Nonce:       d.Bytes32("nonce"),
	}
	if err := d.Finish(); err != nil {
		return err
	}
	*h = v
	return nil
}

// Challenge is the acceptor's answer to Hello: who it is and its nonce. It
// carries no MAC: the acceptor proves itself in Welcome, after the dialer
// has proved itself in Auth.
//
// Strings follow the same rules as Hello's.
type Challenge struct {
	Version     uint16   // protocol version the acceptor speaks
	ServerID    string   // acceptor's server ID
	Group       string   // acceptor's group
	Incarnation uint64   // acceptor's incarnation
	Nonce       [32]byte // fresh per handshake (NewNonce)
}

// AppendTo appends the encoded Challenge to dst and returns the extended
// slice. Because the encoding is canonical, AppendTo of a decoded Challenge
// equals the received payload.
func (c *Challenge) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, c.Version)
	dst = wire.AppendStr8(dst, c.ServerID)
	dst = wire.AppendStr8(dst, c.Group)
	dst = binary.BigEndian.AppendUint64(dst, c.Incarnation)
	return append(dst, c.Nonce[:]...)
}

// Decode sets c from b, a whole Challenge payload. On error, which wraps
// ErrMalformed, c is unchanged. Decoded strings do not alias b.
func (c *Challenge) Decode(b []byte) error {
	d := wire.NewDecoder(b, "challenge")
	v := Challenge{
		Version:     d.U16("version"),
		ServerID:    d.Str8("server ID"),
		Group:       d.Str8("group"),
		Incarnation: d.U64("incarnation"),
		Nonce:       d.Bytes32("nonce"),
	}
	if err := d.Finish(); err != nil {
		return err
	}
	*c = v
	return nil
}

// Auth is the dialer's proof that it holds the secret: MAC is AuthMAC over
// the Hello and the Challenge payloads. Welcome, the acceptor's proof, has
// the same encoding.
type Auth struct {
	MAC [32]byte
}

// AppendTo appends the encoded Auth to dst and returns the extended slice.
func (a *Auth) AppendTo(dst []byte) []byte {
	return append(dst, a.MAC[:]...)
}

// Decode sets a from b, a whole Auth (or Welcome) payload. On error, which
// wraps ErrMalformed, a is unchanged.
func (a *Auth) Decode(b []byte) error {
	d := wire.NewDecoder(b, "auth")
	mac := d.Bytes32("mac")
	if err := d.Finish(); err != nil {
		return err
	}
	a.MAC = mac
	return nil
}

// Welcome is the acceptor's proof that it holds the secret, sent only after
// it has verified the dialer's Auth: MAC is WelcomeMAC over the Hello and
// the Challenge payloads. Its encoding is Auth's.
type Welcome = Auth

// Close says why the sender ends a link or connection; the sender closes the
// connection after it.
type Close struct {
	Reason  Reason
	Message string // human-readable detail; may be empty
}

// AppendTo appends the encoded Close to dst and returns the extended slice.
// Invalid UTF-8 in Message is replaced with U+FFFD and a message longer than
// MaxCloseMessage bytes is cut at a rune boundary, so the result always
// decodes.
func (c *Close) AppendTo(dst []byte) []byte {
	msg := wire.TruncateUTF8(strings.ToValidUTF8(c.Message, "\uFFFD"), MaxCloseMessage)
	dst = binary.BigEndian.AppendUint16(dst, uint16(c.Reason))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(msg)))
	return append(dst, msg...)
}

// Decode sets c from b, a whole Close payload. On error, which wraps
// ErrMalformed, c is unchanged. The decoded Message does not alias b.
// Reasons this package does not name are accepted (they print as
// "reason(N)").
func (c *Close) Decode(b []byte) error {
	d := wire.NewDecoder(b, "close")
	v := Close{
		Reason:  Reason(d.U16("reason")),
		Message: d.Str16("message", MaxCloseMessage),
	}
	if err := d.Finish(); err != nil {
		return err
	}
	*c = v
	return nil
}

// PeekVersion returns the version at the start of a Hello or Challenge
// payload, and false when b is too short to hold one. It lets a receiver
// answer ReasonVersion to a peer whose later fields it cannot decode.
func PeekVersion(b []byte) (uint16, bool) {
	if len(b) < 2 {
		return 0, false
	}
	return binary.BigEndian.Uint16(b), true
}

// AuthMAC returns the dialer's MAC: HMAC-SHA256 keyed with the system
// secret over
//
//	"cloudrift/2 dialer\x00" | u32 len(hello) | hello | u32 len(challenge) | challenge
//
// where hello and challenge are the Hello and Challenge payloads exactly as
// they crossed the wire. The nonces in both make it fresh.
func AuthMAC(secret, hello, challenge []byte) [32]byte {
	return transcriptMAC(secret, dialerLabel, hello, challenge)
}

// WelcomeMAC returns the acceptor's MAC: like AuthMAC with the label
// "cloudrift/2 acceptor\x00", so neither MAC can stand in for the other.
func WelcomeMAC(secret, hello, challenge []byte) [32]byte {
	return transcriptMAC(secret, acceptorLabel, hello, challenge)
}

// VerifyMAC reports whether a and b are equal, in constant time.
func VerifyMAC(a, b [32]byte) bool {
	return hmac.Equal(a[:], b[:])
}

// NewNonce returns 32 random bytes from crypto/rand.
func NewNonce() ([32]byte, error) {
	var n [32]byte
	if _, err := rand.Read(n[:]); err != nil {
		return [32]byte{}, fmt.Errorf("protocol: nonce: %w", err)
	}
	return n, nil
}

func transcriptMAC(secret []byte, label string, hello, challenge []byte) [32]byte {
	m := hmac.New(sha256.New, secret)
	var n [4]byte
	m.Write([]byte(label))
	binary.BigEndian.PutUint32(n[:], uint32(len(hello)))
	m.Write(n[:])
	m.Write(hello)
	binary.BigEndian.PutUint32(n[:], uint32(len(challenge)))
	m.Write(n[:])
	m.Write(challenge)
	var sum [32]byte
	m.Sum(sum[:0])
	return sum
}
