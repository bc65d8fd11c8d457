package protocol

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/cloudrift/cloudrift/protocol/internal/wire"
)

// Client payloads. On a game client's WebSocket a binary message is
//
//	u8 kind | u16 tag | payload
//
// (a link frame without its length). On server links, messages for clients
// travel in KindClientSend and KindClientMulti frames whose Tag is the
// user's tag:
//
//	ClientWelcome: str8 serverID | u64 clientID | u32 maxMessage
//	ClientSend:    u64 clientID | payload
//	ClientMulti:   u16 n | n × u64 clientID | payload
//	ClientGone:    u16 n | n × u64 clientID
//	Move:          u16 reason | u8 n | n × str16 URL (to a game client)

// WSHeaderSize is the size of a client message header: kind and tag.
const WSHeaderSize = 3

// AppendWS appends a client (WebSocket) message: kind, tag, payload.
func AppendWS(dst []byte, kind Kind, tag uint16, payload []byte) []byte {
	dst = append(dst, byte(kind), byte(tag>>8), byte(tag))
	return append(dst, payload...)
}

// DecodeWS splits a client message into its parts. Payload aliases b.
func DecodeWS(b []byte) (Frame, error) {
	if len(b) < WSHeaderSize {
		return Frame{}, fmt.Errorf("%w: client message of %d bytes", ErrShortFrame, len(b))
	}
	return Frame{Kind: Kind(b[0]), Tag: binary.BigEndian.Uint16(b[1:3]), Payload: b[3:]}, nil
}

// ClientWelcome tells a game client who it is in the system.
type ClientWelcome struct {
	ServerID   string // the external server holding the client
	ClientID   uint64 // the client's ID on that server
	MaxMessage uint32 // largest payload the server accepts from the client
}

// AppendTo appends the encoded welcome to dst.
func (w *ClientWelcome) AppendTo(dst []byte) []byte {
	dst = wire.AppendStr8(dst, w.ServerID)
	dst = binary.BigEndian.AppendUint64(dst, w.ClientID)
	return binary.BigEndian.AppendUint32(dst, w.MaxMessage)
}

// Decode decodes a welcome; strings are copies.
func (w *ClientWelcome) Decode(b []byte) error {
	d := wire.NewDecoder(b, "client welcome")
	var v ClientWelcome
	v.ServerID = d.Str8("server ID")
	v.ClientID = d.U64("client ID")
	if p, ok := d.Take(4, "max message"); ok {
		v.MaxMessage = binary.BigEndian.Uint32(p)
	}
	if err := d.Finish(); err != nil {
		return err
	}
	*w = v
	return nil
}

// AppendClientSend appends a ClientSend payload.
func AppendClientSend(dst []byte, clientID uint64, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, clientID)
	return append(dst, payload...)
}

// DecodeClientSend splits a ClientSend payload. payload aliases b.
func DecodeClientSend(b []byte) (clientID uint64, payload []byte, err error) {
	if len(b) < 8 {
		return 0, nil, fmt.Errorf("%w: client send: %d bytes, need at least 8", ErrMalformed, len(b))
	}
	return binary.BigEndian.Uint64(b), b[8:], nil
}

// MaxClientsPerFrame is the most client IDs one ClientMulti or ClientGone
// carries.
const MaxClientsPerFrame = 1<<16 - 1

// AppendClientMulti appends a ClientMulti payload. ids must hold at most
// MaxClientsPerFrame IDs.
func AppendClientMulti(dst []byte, ids []uint64, payload []byte) []byte {
	dst = appendIDs(dst, ids)
	return append(dst, payload...)
}

// DecodeClientMulti splits a ClientMulti payload, appending the IDs to ids
// (pass a reused slice to avoid allocating). payload aliases b.
func DecodeClientMulti(b []byte, ids []uint64) ([]uint64, []byte, error) {
	ids, n, err := decodeIDs(b, ids, "client multi")
	if err != nil {
		return ids, nil, err
	}
	return ids, b[n:], nil
}

// AppendClientGone appends a ClientGone payload (at most
// MaxClientsPerFrame IDs).
func AppendClientGone(dst []byte, ids []uint64) []byte {
	return appendIDs(dst, ids)
}

// DecodeClientGone decodes a ClientGone payload, appending to ids.
func DecodeClientGone(b []byte, ids []uint64) ([]uint64, error) {
	ids, n, err := decodeIDs(b, ids, "client gone")
	if err == nil && n != len(b) {
		err = fmt.Errorf("%w: client gone: %d trailing bytes", ErrMalformed, len(b)-n)
	}
	return ids, err
}

func appendIDs(dst []byte, ids []uint64) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(ids)))
	for _, id := range ids {
		dst = binary.BigEndian.AppendUint64(dst, id)
	}
	return dst
}

// decodeIDs reads u16 n | n × u64, checking the length before allocating.
func decodeIDs(b []byte, ids []uint64, msg string) ([]uint64, int, error) {
	if len(b) < 2 {
		return ids, 0, fmt.Errorf("%w: %s: truncated count", ErrMalformed, msg)
	}
	n := int(binary.BigEndian.Uint16(b))
	end := 2 + 8*n
	if len(b) < end {
		return ids, 0, fmt.Errorf("%w: %s: %d IDs need %d bytes, have %d", ErrMalformed, msg, n, end, len(b))
	}
	for i := 2; i < end; i += 8 {
		ids = append(ids, binary.BigEndian.Uint64(b[i:]))
	}
	return ids, end, nil
}

// ClientRef is the system-wide address of a game client: the external
// server that holds it and its ID there. A server's own ref has ID 0.
type ClientRef struct {
	Server string
	ID     uint64
}

// String formats the ref as "server#id".
func (r ClientRef) String() string { return fmt.Sprintf("%s#%d", r.Server, r.ID) }

// IsZero reports whether r is the zero ref.
func (r ClientRef) IsZero() bool { return r.Server == "" && r.ID == 0 }

// AppendClientRef appends r as str8 server | u64 id.
func AppendClientRef(dst []byte, r ClientRef) []byte {
	dst = wire.AppendStr8(dst, r.Server)
	return binary.BigEndian.AppendUint64(dst, r.ID)
}

// DecodeClientRef reads a ref from the start of b and returns the bytes
// after it.
func DecodeClientRef(b []byte) (ClientRef, []byte, error) {
	d := wire.NewDecoder(b, "client ref")
	var r ClientRef
	r.Server = d.Str8("server")
	r.ID = d.U64("id")
	if d.Err() != nil {
		return ClientRef{}, b, d.Err()
	}
	return r, b[d.Off():], nil
}

// MaxMoveURLs is the most URLs one Move carries (its count is a u8).
const MaxMoveURLs = 255

// MaxMoveURL is the longest URL, in bytes, a Move carries (its length is a
// u16).
const MaxMoveURL = 1<<16 - 1

// Move asks a game client to connect to another server of its group and
// then close this session (make before break); the session goes on until
// then. Its payload is
//
//	u16 reason | u8 n | n × (u16 len | len bytes URL, UTF-8)
//
// Reason is ReasonDraining. URLs are client URLs (ws:// or wss://, with the
// path) of the group's other servers that are not draining, least loaded
// first; none means the sender knows no other server, so the client uses
// the group's directory or the URLs it was configured with.
type Move struct {
	Reason Reason
	URLs   []string
}

// AppendTo appends the encoded Move to dst. URLs past MaxMoveURLs, and
// URLs longer than MaxMoveURL bytes or not valid UTF-8, are left out, so
// the result always decodes.
func (m *Move) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Reason))
	at := len(dst)
	dst = append(dst, 0)
	n := 0
	for _, u := range m.URLs {
		if n == MaxMoveURLs {
			break
		}
		if u == "" || len(u) > MaxMoveURL || !utf8.ValidString(u) {
			continue
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(u)))
		dst = append(dst, u...)
		n++
	}
	dst[at] = byte(n)
	return dst
}

// Decode sets m from b, a whole Move payload. On error, which wraps
// ErrMalformed (truncated, trailing bytes, a URL that is not UTF-8), m is
// unchanged. URLs do not alias b.
func (m *Move) Decode(b []byte) error {
	d := wire.NewDecoder(b, "move")
	v := Move{Reason: Reason(d.U16("reason"))}
	n := int(d.U8("url count"))
	if d.Check(n, 2, "urls") {
		for i := 0; i < n && d.Err() == nil; i++ {
			v.URLs = append(v.URLs, d.Str16("url", MaxMoveURL))
		}
	}
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}
