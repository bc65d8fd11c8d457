package openworld

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/cloudrift/cloudrift/protocol"
)

// ErrBadMessage is wrapped by every decoding error and every refused text.
var ErrBadMessage = errors.New("openworld: bad message")

// maxViewEntries bounds the positions of one view message; a larger view is
// sent in several.
const maxViewEntries = 256

// Step is a player's move request (PlayerMove): where it wants to be, and a
// stamp that comes back in the world's answer.
type Step struct {
	Point
	Stamp uint64
}

// AppendStep appends the encoding of s to b.
func AppendStep(b []byte, s Step) []byte {
	b = appendPoint(b, s.Point)
	return binary.BigEndian.AppendUint64(b, s.Stamp)
}

// ParseStep decodes a step.
func ParseStep(p []byte) (Step, error) {
	r := reader{b: p, what: "move"}
	s := Step{Point: r.point(), Stamp: r.u64()}
	return s, r.done()
}

// AppendStamp appends a ping or pong (a u64 stamp) to b.
func AppendStamp(b []byte, stamp uint64) []byte {
	return binary.BigEndian.AppendUint64(b, stamp)
}

// ParseStamp decodes a ping or pong.
func ParseStamp(p []byte) (uint64, error) {
	r := reader{b: p, what: "stamp"}
	s := r.u64()
	return s, r.done()
}

// Welcome is the gateway's greeting to a player (PlayerWelcome): where the
// player starts and its name.
type Welcome struct {
	Point
	Name string
}

// AppendWelcome appends the encoding of w to b.
func AppendWelcome(b []byte, w Welcome) []byte {
	b = appendPoint(b, w.Point)
	return appendStr8(b, w.Name)
}

// ParseWelcome decodes a welcome.
func ParseWelcome(p []byte) (Welcome, error) {
	r := reader{b: p, what: "welcome"}
	w := Welcome{Point: r.point(), Name: r.str8()}
	return w, r.done()
}

// Position is where a player is: the payload of a moved message
// (PlayerMoved) and an entry of a view (PlayerView, where Stamp is not
// sent). Stamp is the mover's stamp of the step that led here, or 0.
type Position struct {
	Player ClientRef
	Point
	Region int
	Stamp  uint64
}

// AppendPosition appends a moved message to b.
func AppendPosition(b []byte, p Position) []byte {
	b = appendEntry(b, p)
	return binary.BigEndian.AppendUint64(b, p.Stamp)
}

// ParsePosition decodes a moved message.
func ParsePosition(p []byte) (Position, error) {
	r := reader{b: p, what: "moved"}
	pos := r.entry()
	pos.Stamp = r.u64()
	return pos, r.done()
}

// AppendView appends a view message of at most 65535 positions to b; their
// stamps are not sent.
func AppendView(b []byte, ps []Position) ([]byte, error) {
	if len(ps) > 0xFFFF {
		return b, fmt.Errorf("%w: view of %d positions", ErrBadMessage, len(ps))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(ps)))
	for _, p := range ps {
		b = appendEntry(b, p)
	}
	return b, nil
}

// ParseView decodes a view message.
func ParseView(p []byte) ([]Position, error) {
	r := reader{b: p, what: "view"}
	n := int(r.u16())
	// Every entry takes at least 19 bytes: do not trust n further.
	if r.err == nil && n*19 > len(r.b) {
		return nil, fmt.Errorf("%w: view of %d positions in %d bytes", ErrBadMessage, n, len(r.b))
	}
	out := make([]Position, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.entry())
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return out, nil
}

// AppendRef appends a gone message (a ref) to b.
func AppendRef(b []byte, ref ClientRef) []byte {
	return protocol.AppendClientRef(b, ref)
}

// ParseRef decodes a gone message.
func ParseRef(p []byte) (ClientRef, error) {
	r := reader{b: p, what: "gone"}
	ref := r.ref()
	return ref, r.done()
}

// ChatLine is a line of chat: who said it and what. It is the payload of a
// chat message from a gateway to a social server (TagChat), of its relay to
// every gateway (TagChatLine), and of the chat line a player gets
// (PlayerChatLine).
type ChatLine struct {
	From ClientRef
	Name string
	Text string
}

// AppendChatLine appends the encoding of c to b.
func AppendChatLine(b []byte, c ChatLine) []byte {
	b = protocol.AppendClientRef(b, c.From)
	b = appendStr8(b, c.Name)
	return append(b, c.Text...)
}

// ParseChatLine decodes a chat line and checks its name and text (see
// CheckName and CheckChat).
func ParseChatLine(p []byte) (ChatLine, error) {
	r := reader{b: p, what: "chat line"}
	c := ChatLine{From: r.ref(), Name: r.str8()}
	if r.err != nil {
		return ChatLine{}, r.err
	}
	c.Text = string(r.b)
	if err := CheckName(c.Name); err != nil {
		return ChatLine{}, err
	}
	if err := CheckChat(c.Text); err != nil {
		return ChatLine{}, err
	}
	return c, nil
}

// CheckChat checks a chat text: 1 to MaxChatBytes bytes of UTF-8 without
// control characters.
func CheckChat(text string) error {
	if len(text) == 0 || len(text) > MaxChatBytes {
		return fmt.Errorf("%w: chat of %d bytes, want 1 to %d", ErrBadMessage, len(text), MaxChatBytes)
	}
	return checkText("chat", text)
}

// CheckName checks a player name: 1 to MaxNameBytes bytes of UTF-8 without
// control characters.
func CheckName(name string) error {
	if len(name) == 0 || len(name) > MaxNameBytes {
		return fmt.Errorf("%w: name of %d bytes, want 1 to %d", ErrBadMessage, len(name), MaxNameBytes)
	}
	return checkText("name", name)
}

func checkText(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not UTF-8", ErrBadMessage, what)
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return fmt.Errorf("%w: %s has a control character %U", ErrBadMessage, what, c)
		}
	}
	return nil
}

// Update is a player's state a gateway sends a world server (TagEnter,
// TagMove). Owner says whether the world owns the player's region or only
// watches it (it owns an adjacent region). Stamp is the player's stamp of
// the step, or 0.
type Update struct {
	Player ClientRef
	Point
	Owner bool
	Stamp uint64
}

// AppendUpdate appends the encoding of u to b.
func AppendUpdate(b []byte, u Update) []byte {
	b = protocol.AppendClientRef(b, u.Player)
	b = appendPoint(b, u.Point)
	var flags byte
	if u.Owner {
		flags = 1
	}
	b = append(b, flags)
	return binary.BigEndian.AppendUint64(b, u.Stamp)
}

// ParseUpdate decodes an update.
func ParseUpdate(p []byte) (Update, error) {
	r := reader{b: p, what: "update"}
	u := Update{Player: r.ref(), Point: r.point()}
	u.Owner = r.u8()&1 != 0
	u.Stamp = r.u64()
	return u, r.done()
}

// Leave tells a world server to forget a player (TagLeave). Handover says
// the player only moved to another world server: the players near it are
// not told it left.
type Leave struct {
	Player   ClientRef
	Handover bool
}

// AppendLeave appends the encoding of l to b.
func AppendLeave(b []byte, l Leave) []byte {
	b = protocol.AppendClientRef(b, l.Player)
	if l.Handover {
		return append(b, 1)
	}
	return append(b, 0)
}

// ParseLeave decodes a leave.
func ParseLeave(p []byte) (Leave, error) {
	r := reader{b: p, what: "leave"}
	l := Leave{Player: r.ref(), Handover: r.u8()&1 != 0}
	return l, r.done()
}

// Ping asks a world server to pong Stamp to Player (TagPing).
type Ping struct {
	Player ClientRef
	Stamp  uint64
}

// AppendPing appends the encoding of p to b.
func AppendPing(b []byte, p Ping) []byte {
	b = protocol.AppendClientRef(b, p.Player)
	return binary.BigEndian.AppendUint64(b, p.Stamp)
}

// ParsePing decodes a ping.
func ParsePing(p []byte) (Ping, error) {
	r := reader{b: p, what: "ping"}
	pg := Ping{Player: r.ref(), Stamp: r.u64()}
	return pg, r.done()
}

// AppendMap appends the map message (TagMap) to b.
func AppendMap(b []byte, regions int) []byte {
	return binary.BigEndian.AppendUint16(b, uint16(regions))
}

// ParseMap decodes the map message: 1 to MaxRegions regions.
func ParseMap(p []byte) (int, error) {
	r := reader{b: p, what: "map"}
	n := int(r.u16())
	if err := r.done(); err != nil {
		return 0, err
	}
	if n < 1 || n > MaxRegions {
		return 0, fmt.Errorf("%w: map with %d regions", ErrBadMessage, n)
	}
	return n, nil
}

func appendPoint(b []byte, p Point) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(p.X))
	return binary.BigEndian.AppendUint32(b, uint32(p.Y))
}

// appendEntry appends a position without its stamp.
func appendEntry(b []byte, p Position) []byte {
	b = protocol.AppendClientRef(b, p.Player)
	b = appendPoint(b, p.Point)
	return binary.BigEndian.AppendUint16(b, uint16(p.Region))
}

// appendStr8 appends s, cut to 255 bytes, with its length.
func appendStr8(b []byte, s string) []byte {
	if len(s) > 0xFF {
		s = s[:0xFF]
	}
	b = append(b, byte(len(s)))
	return append(b, s...)
}

// reader decodes a message; the first problem sticks in err and makes every
// later read return zero.
type reader struct {
	b    []byte
	what string
	err  error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = fmt.Errorf("%w: %s: truncated", ErrBadMessage, r.what)
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) u8() uint8 {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if p := r.take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if p := r.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (r *reader) point() Point {
	return Point{X: int32(r.u32()), Y: int32(r.u32())}
}

func (r *reader) str8() string {
	n := int(r.u8())
	return string(r.take(n))
}

func (r *reader) ref() ClientRef {
	if r.err != nil {
		return ClientRef{}
	}
	ref, rest, err := protocol.DecodeClientRef(r.b)
	if err != nil {
		r.err = fmt.Errorf("%w: %s: %v", ErrBadMessage, r.what, err)
		return ClientRef{}
	}
	r.b = rest
	return ref
}

func (r *reader) entry() Position {
	p := Position{Player: r.ref(), Point: r.point()}
	p.Region = int(r.u16())
	return p
}

// done returns the first problem, or an error when bytes are left over.
func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %s: %d bytes too many", ErrBadMessage, r.what, len(r.b))
	}
	return r.err
}
