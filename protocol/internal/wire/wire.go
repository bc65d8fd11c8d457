// Package wire holds the field codecs that every payload of package
// protocol and its subpackages is built from: length-prefixed strings and
// a Decoder whose first failure sticks. Encodings are big-endian.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrMalformed is the error every Decoder failure wraps; package protocol
// exports it as protocol.ErrMalformed.
var ErrMalformed = errors.New("protocol: malformed payload")

// MaxStr8 is the longest string a u8 length prefix carries, in bytes.
const MaxStr8 = 255

// AppendStr8 appends s with a u8 length prefix, cut to MaxStr8 bytes at a
// rune boundary.
func AppendStr8(dst []byte, s string) []byte {
	s = TruncateUTF8(s, MaxStr8)
	dst = append(dst, byte(len(s)))
	return append(dst, s...)
}

// TruncateUTF8 returns s cut to at most n bytes without splitting a rune.
func TruncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// Decoder reads fields from a payload. The first failure sticks: later
// reads return zero values and Finish reports the first error, which
// wraps ErrMalformed and names the message and field.
type Decoder struct {
	b    []byte
	off  int
	msg  string // message name for errors
	err  error
	strs *Strings // nil: every string is a new copy
}

// NewDecoder returns a Decoder of b; msg names the message in errors.
func NewDecoder(b []byte, msg string) Decoder { return Decoder{b: b, msg: msg} }

// ReuseStrings makes d hand out strings from s (see Strings) instead of
// a new copy of each; s must not be used by another goroutine meanwhile.
func (d *Decoder) ReuseStrings(s *Strings) { d.strs = s }

// Err returns the first failure, or nil.
func (d *Decoder) Err() error { return d.err }

// Left returns how many bytes are still unread.
func (d *Decoder) Left() int { return len(d.b) - d.off }

// Off returns how many bytes were read.
func (d *Decoder) Off() int { return d.off }

// Failf records a malformed-payload error unless one is already recorded.
func (d *Decoder) Failf(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrMalformed, d.msg, fmt.Sprintf(format, args...))
	}
}

// Take returns the next n bytes (aliasing the payload), or false after an
// error (recording a truncation error if there was none).
func (d *Decoder) Take(n int, field string) ([]byte, bool) { return d.take(n, field, "", "") }

// take is Take of the field named field+part+what. The name is joined only
// for an error: decoding a well-formed payload allocates nothing for names.
func (d *Decoder) take(n int, field, part, what string) ([]byte, bool) {
	if d.err != nil {
		return nil, false
	}
	if d.Left() < n {
		d.Failf("%s%s%s truncated (need %d bytes, have %d)", field, part, what, n, d.Left())
		return nil, false
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p, true
}

// U8 reads a byte.
func (d *Decoder) U8(field string) byte {
	if p, ok := d.Take(1, field); ok {
		return p[0]
	}
	return 0
}

// U16 reads a big-endian uint16.
func (d *Decoder) U16(field string) uint16 { return d.U16Of(field, "") }

// U16Of reads a big-endian uint16, the field named field+part (joined
// only for an error).
func (d *Decoder) U16Of(field, part string) uint16 {
	if p, ok := d.take(2, field, part, ""); ok {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

// U32 reads a big-endian uint32.
func (d *Decoder) U32(field string) uint32 {
	if p, ok := d.Take(4, field); ok {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

// U64 reads a big-endian uint64.
func (d *Decoder) U64(field string) uint64 { return d.U64Of(field, "") }

// U64Of reads a big-endian uint64, the field named field+part (joined
// only for an error).
func (d *Decoder) U64Of(field, part string) uint64 {
	if p, ok := d.take(8, field, part, ""); ok {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// Bytes32 reads 32 bytes.
func (d *Decoder) Bytes32(field string) (v [32]byte) {
	if p, ok := d.Take(32, field); ok {
		copy(v[:], p)
	}
	return v
}

// Str8 reads a u8-length-prefixed UTF-8 string.
func (d *Decoder) Str8(field string) string { return d.Str8Of(field, "") }

// Str8Of reads a u8-length-prefixed UTF-8 string, the field named
// field+part (joined only for an error).
func (d *Decoder) Str8Of(field, part string) string {
	p, ok := d.take(1, field, part, " length")
	if !ok {
		return ""
	}
	return d.text(int(p[0]), field, part)
}

// Str16 reads a u16-length-prefixed UTF-8 string of at most limit bytes.
func (d *Decoder) Str16(field string, limit int) string {
	p, ok := d.take(2, field, "", " length")
	if !ok {
		return ""
	}
	n := int(binary.BigEndian.Uint16(p))
	if n > limit {
		d.Failf("%s is %d bytes, limit %d", field, n, limit)
		return ""
	}
	return d.Text(n, field)
}

// Text reads n bytes of UTF-8 as a string that does not alias the payload.
func (d *Decoder) Text(n int, field string) string { return d.text(n, field, "") }

func (d *Decoder) text(n int, field, part string) string {
	p, ok := d.take(n, field, part, "")
	if !ok {
		return ""
	}
	if d.strs != nil && len(p) > 0 {
		if v, ok := d.strs.m[string(p)]; ok { // a lookup that does not allocate
			return v // valid UTF-8: it was checked when it was kept
		}
	}
	if !utf8.Valid(p) {
		d.Failf("%s%s is not valid UTF-8", field, part)
		return ""
	}
	v := string(p)
	if d.strs != nil && len(p) > 0 {
		d.strs.keep(v)
	}
	return v
}

// MaxStrings is how many strings a Strings keeps; past it, it starts over.
const MaxStrings = 256

// Strings keeps strings that decoders handed out, so that bytes seen
// before decode to the same string without a new allocation: a receiver
// that decodes the same keys, uploaders and addresses over and over (a
// subscriber's notifications) then allocates nothing for them. It keeps
// at most MaxStrings strings, forgetting them all when full. The zero
// value is ready; it is not safe for concurrent use.
type Strings struct {
	m map[string]string
}

func (s *Strings) keep(v string) {
	if s.m == nil {
		s.m = make(map[string]string)
	}
	if len(s.m) >= MaxStrings {
		clear(s.m)
	}
	s.m[v] = v
}

// Flags reads a flags byte, rejecting bits outside known.
func (d *Decoder) Flags(known byte) byte {
	f := d.U8("flags")
	if d.err == nil && f&^known != 0 {
		d.Failf("unknown flags %#x", f&^known)
		return 0
	}
	return f
}

// Rest returns the remaining bytes (aliasing the payload).
func (d *Decoder) Rest() []byte {
	if d.err != nil {
		return nil
	}
	p := d.b[d.off:]
	d.off = len(d.b)
	return p
}

// Check reports whether n elements of at least size bytes each can fit in
// what is left, recording an error if not: decoders call it before they
// allocate for a count, so no input makes them allocate more than it holds.
func (d *Decoder) Check(n, size int, field string) bool {
	if d.err != nil {
		return false
	}
	if left := d.Left(); n > left/size {
		d.Failf("%d %s need at least %d bytes, have %d", n, field, n*size, left)
		return false
	}
	return true
}

// Finish returns the first error, or an error if bytes remain.
func (d *Decoder) Finish() error {
	if d.err != nil {
		return d.err
	}
	if rest := d.Left(); rest > 0 {
		return fmt.Errorf("%w: %s: %d trailing bytes", ErrMalformed, d.msg, rest)
	}
	return nil
}
