// Package cloudwire encodes the cloud memory's messages (package cloud's
// types on the wire). Their frame kinds are package protocol's extension
// kinds (protocol.KindCloudPost, ...): the runtime hands them to the plugin
// that claims them, and the cloud memory claims these. Two conversations
// use them:
//
//   - a game client and its external server (client.go, client kinds
//     64–71), where request IDs are chosen by the client;
//   - a server and a cloud-memory replica over a link (replica.go, server
//     kinds 80–91), where request IDs are chosen by the server.
//
// Every request that expects an answer carries a request ID, and every
// answer carries a cloud.Code and a message. Encodings are big-endian and
// canonical (Decode rejects anything AppendTo would not produce, so a
// decoded value re-encodes to its input):
//
//	key:  str8 primary | u32 secondary
//	ref:  str8 server | u64 id                      (a protocol.ClientRef)
//	row:  key | ref uploader | str8 addr | str8 via | u32 n | n bytes data
//	keys: u16 n | n × key
//	refs: u16 n | n × ref
//	msg:  u16 n | n bytes UTF-8, at most MaxMessage
//
// Client kinds:
//
//	Post:        u32 req | key | data (the rest)
//	Release:     u32 req | keys
//	Get:         u32 req | u8 flags | u32 offset | u32 limit | keys | refs uploaders
//	Unsubscribe: u32 req | keys | refs uploaders
//	Reply:       u32 req | u16 code | msg
//	Result:      u32 req | u16 code | msg | u8 flags | u32 total | keys missing | u32 n | n × row
//	Notice:      u8 type | u8 flags | row
//	Resync:      u8 flags | key | u32 n | n × row
//
// Server kinds:
//
//	SrvPost:    u64 req | u8 flags | key | ref uploader | str8 addr | data (the rest)
//	SrvRelease: u64 req | ref uploader | str8 addr | keys
//	SrvGet:     u64 req | u8 flags | ref asker | str8 addr | u32 offset | u32 limit | u32 maxBytes | keys | refs uploaders
//	SrvSub:     u8 mode | keys | refs uploaders
//	SrvDrop:    ref uploader
//	SrvSync:    u8 op | (op 4, SyncRing: u64 ring)
//	SrvReply:   u64 req | u16 code | msg
//	SrvResult:  u64 req | u16 code | msg | u8 flags | u16 n | n × u32 count | u32 m | m × row
//	            | (flag refused: u16 r | r × (u16 index | u16 code))
//	SrvNotify:  a Notice
//	SrvMoved:   keys
//
// Decoded strings are copies (or, with DecodeWith, strings a Strings
// kept from earlier input); decoded Data fields alias the input unless
// the type says otherwise. Decoders never allocate more than the input
// can hold: every count is checked against the bytes left before anything
// is allocated for it.
package cloudwire

import (
	"encoding/binary"
	"strings"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/internal/wire"
)

// MaxMessage is the longest error message an answer carries, in bytes.
const MaxMessage = 1024

// Flag bits.
const (
	flagSubscribe = 1 << 0 // Get

	flagTruncated = 1 << 0 // Result, Resync
	flagPartial   = 1 << 1 // Result

	flagCreated = 1 << 0 // Notice

	srvFlagSync      = 1 << 0 // SrvPost, SrvGet
	srvFlagCountOnly = 1 << 1 // SrvGet

	srvFlagCut     = 1 << 0 // SrvResult
	srvFlagRefused = 1 << 1 // SrvResult
)

// minRowSize is the smallest encoded row.
const minRowSize = 5 + 9 + 1 + 1 + 4

// RowSize returns the bytes r takes in a payload.
func RowSize(r *cloud.Row) int {
	return 1 + len(r.Key.Primary) + 4 + 1 + len(r.Uploader.Server) + 8 + 1 + len(r.Addr) + 1 + len(r.Via) + 4 + len(r.Data)
}

// Sizes for growing a destination once before appending (an AppendTo
// called with nil otherwise reallocates as it grows): each is at least the
// bytes its appender adds.

func keySize(k cloud.Key) int { return 1 + len(k.Primary) + 4 }

func refSize(r protocol.ClientRef) int { return 1 + len(r.Server) + 8 }

// listSize is the size of a u16-counted list.
func listSize[T any](xs []T, size func(T) int) int {
	n := 2
	for _, x := range xs {
		n += size(x)
	}
	return n
}

func keysSize(keys []cloud.Key) int { return listSize(keys, keySize) }

func refsSize(refs []protocol.ClientRef) int { return listSize(refs, refSize) }

func rowsSize(rows []cloud.Row) int {
	n := 4
	for i := range rows {
		n += RowSize(&rows[i])
	}
	return n
}

// Encoding helpers. Callers validate keys (cloud.Key.Validate) and keep
// lists within cloud.MaxKeys; the appenders cut what does not fit, which
// the receiver then sees.

func appendKey(dst []byte, k cloud.Key) []byte {
	dst = wire.AppendStr8(dst, k.Primary)
	return binary.BigEndian.AppendUint32(dst, k.Secondary)
}

func appendKeys(dst []byte, keys []cloud.Key) []byte {
	n := min(len(keys), cloud.MaxKeys)
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	for _, k := range keys[:n] {
		dst = appendKey(dst, k)
	}
	return dst
}

func appendRefs(dst []byte, refs []protocol.ClientRef) []byte {
	n := min(len(refs), cloud.MaxKeys)
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	for _, r := range refs[:n] {
		dst = protocol.AppendClientRef(dst, r)
	}
	return dst
}

// AppendRow appends one encoded row (see the package comment).
func AppendRow(dst []byte, r *cloud.Row) []byte {
	dst = appendKey(dst, r.Key)
	dst = protocol.AppendClientRef(dst, r.Uploader)
	dst = wire.AppendStr8(dst, r.Addr)
	dst = wire.AppendStr8(dst, r.Via)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(r.Data)))
	return append(dst, r.Data...)
}

func appendRows(dst []byte, rows []cloud.Row) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(rows)))
	for i := range rows {
		dst = AppendRow(dst, &rows[i])
	}
	return dst
}

// appendMsg appends a u16-prefixed message, made valid UTF-8 and cut to
// MaxMessage bytes.
func appendMsg(dst []byte, s string) []byte {
	s = wire.TruncateUTF8(strings.ToValidUTF8(s, "\uFFFD"), MaxMessage)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// Strings keeps decoded strings for reuse by the DecodeWith methods: a
// receiver that decodes the same keys and uploaders over and over (a
// subscriber's notifications) allocates nothing for them. It keeps at most
// 256 strings, forgetting them all when full. The zero
// value is ready; it is not safe for concurrent use.
type Strings = wire.Strings

// decoder adds the cloud fields to wire.Decoder.
type decoder struct{ wire.Decoder }

func (d *decoder) key() cloud.Key {
	return cloud.Key{Primary: d.Str8("key primary"), Secondary: d.U32("key secondary")}
}

func (d *decoder) ref(field string) protocol.ClientRef {
	return protocol.ClientRef{Server: d.Str8Of(field, " server"), ID: d.U64Of(field, " id")}
}

func (d *decoder) keys(field string) []cloud.Key {
	n := int(d.U16Of(field, " count"))
	if n == 0 || !d.Check(n, 5, field) {
		return nil
	}
	keys := make([]cloud.Key, n)
	for i := range keys {
		keys[i] = d.key()
	}
	return keys
}

func (d *decoder) refs(field string) []protocol.ClientRef {
	n := int(d.U16Of(field, " count"))
	if n == 0 || !d.Check(n, 9, field) {
		return nil
	}
	refs := make([]protocol.ClientRef, n)
	for i := range refs {
		refs[i] = d.ref(field)
	}
	return refs
}

func (d *decoder) row() cloud.Row {
	var r cloud.Row
	r.Key = d.key()
	r.Uploader = d.ref("uploader")
	r.Addr = d.Str8("addr")
	r.Via = d.Str8("via")
	n := d.U32("data length")
	if d.Err() == nil && uint64(n) > uint64(d.Left()) {
		d.Failf("data of %d bytes, have %d", n, d.Left())
	}
	if p, ok := d.Take(int(n), "data"); ok {
		r.Data = p
	}
	return r
}

func (d *decoder) rows() []cloud.Row {
	n := d.U32("row count")
	if n == 0 || !d.Check(int(min(n, 1<<31-1)), minRowSize, "rows") {
		return nil
	}
	rows := make([]cloud.Row, n)
	for i := range rows {
		rows[i] = d.row()
		if d.Err() != nil {
			return nil
		}
	}
	return rows
}
