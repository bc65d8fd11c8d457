package cloudwire

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/internal/wire"
)

// Messages between a game client and its external server (kinds 64–71).
// Request IDs are the client's; the server answers each with a Reply or a
// Result, and pushes Notices and Resyncs of the client's subscriptions.

// Post is a client's Post.
type Post struct {
	Req  uint32
	Key  cloud.Key
	Data []byte // aliases the decoded payload
}

func (m *Post) AppendTo(dst []byte) []byte {
	dst = slices.Grow(dst, 4+keySize(m.Key)+len(m.Data))
	dst = binary.BigEndian.AppendUint32(dst, m.Req)
	dst = appendKey(dst, m.Key)
	return append(dst, m.Data...)
}

func (m *Post) Decode(b []byte) error { return m.DecodeWith(b, nil) }

// DecodeWith is Decode with strings taken from s when it holds them
// (nil: every string is a new copy).
func (m *Post) DecodeWith(b []byte, s *Strings) error {
	d := decoder{wire.NewDecoder(b, "cloud post")}
	d.ReuseStrings(s)
	v := Post{Req: d.U32("req"), Key: d.key()}
	v.Data = d.Rest()
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// Release is a client's Release of its own rows under Keys.
type Release struct {
	Req  uint32
	Keys []cloud.Key
}

func (m *Release) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, m.Req)
	return appendKeys(dst, m.Keys)
}

func (m *Release) Decode(b []byte) error {
	d := decoder{wire.NewDecoder(b, "cloud release")}
	v := Release{Req: d.U32("req"), Keys: d.keys("keys")}
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// Get is a client's Get.
type Get struct {
	Req   uint32
	Query cloud.Query
}

func (m *Get) AppendTo(dst []byte) []byte {
	dst = slices.Grow(dst, 4+1+4+4+keysSize(m.Query.Keys)+refsSize(m.Query.Uploaders))
	dst = binary.BigEndian.AppendUint32(dst, m.Req)
	var flags byte
	if m.Query.Subscribe {
		flags |= flagSubscribe
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint32(dst, m.Query.Offset)
	dst = binary.BigEndian.AppendUint32(dst, m.Query.Limit)
	dst = appendKeys(dst, m.Query.Keys)
	return appendRefs(dst, m.Query.Uploaders)
}

func (m *Get) Decode(b []byte) error { return m.DecodeWith(b, nil) }

// DecodeWith is Decode with strings taken from s when it holds them
// (nil: every string is a new copy).
func (m *Get) DecodeWith(b []byte, s *Strings) error {
	d := decoder{wire.NewDecoder(b, "cloud get")}
	d.ReuseStrings(s)
	v := Get{Req: d.U32("req")}
	flags := d.Flags(flagSubscribe)
	v.Query.Subscribe = flags&flagSubscribe != 0
	v.Query.Offset = d.U32("offset")
	v.Query.Limit = d.U32("limit")
	v.Query.Keys = d.keys("keys")
	v.Query.Uploaders = d.refs("uploaders")
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// Unsubscribe is a client's Unsubscribe: the whole subscription to
// each key when Uploaders is empty, else only those uploaders.
type Unsubscribe struct {
	Req       uint32
	Keys      []cloud.Key
	Uploaders []protocol.ClientRef
}

func (m *Unsubscribe) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, m.Req)
	dst = appendKeys(dst, m.Keys)
	return appendRefs(dst, m.Uploaders)
}

func (m *Unsubscribe) Decode(b []byte) error {
	d := decoder{wire.NewDecoder(b, "cloud unsubscribe")}
	v := Unsubscribe{Req: d.U32("req"), Keys: d.keys("keys"), Uploaders: d.refs("uploaders")}
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// Reply answers a client's Post, Release or Unsubscribe.
type Reply struct {
	Req     uint32
	Code    cloud.Code
	Message string // at most MaxMessage bytes; AppendTo cuts a longer one
}

func (m *Reply) AppendTo(dst []byte) []byte {
	dst = slices.Grow(dst, 4+2+2+len(m.Message))
	dst = binary.BigEndian.AppendUint32(dst, m.Req)
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Code))
	return appendMsg(dst, m.Message)
}

func (m *Reply) Decode(b []byte) error {
	d := decoder{wire.NewDecoder(b, "cloud reply")}
	v := Reply{Req: d.U32("req"), Code: cloud.Code(d.U16("code")), Message: d.Str16("message", MaxMessage)}
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// Result answers a client's Get. Rows come in query key order, then
// uploader order (protocol.CompareRefs), after Offset and within Limit.
type Result struct {
	Req     uint32
	Code    cloud.Code
	Message string
	// Total counts every matching row of the keys that answered, whatever
	// Offset, Limit and the byte limit.
	Total uint32
	// Truncated: the download byte limit cut the rows short (at least one
	// row is still returned).
	Truncated bool
	// Partial: some keys' replicas did not answer in time; Missing lists
	// those keys, whose rows are absent (and, with Subscribe, arrive later
	// in a resync).
	Partial bool
	Missing []cloud.Key
	Rows    []cloud.Row // Data fields alias the decoded payload
}

func (m *Result) AppendTo(dst []byte) []byte {
	dst = slices.Grow(dst, 4+2+2+len(m.Message)+1+4+keysSize(m.Missing)+rowsSize(m.Rows))
	dst = binary.BigEndian.AppendUint32(dst, m.Req)
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Code))
	dst = appendMsg(dst, m.Message)
	var flags byte
	if m.Truncated {
		flags |= flagTruncated
	}
	if m.Partial {
		flags |= flagPartial
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint32(dst, m.Total)
	dst = appendKeys(dst, m.Missing)
	return appendRows(dst, m.Rows)
}

func (m *Result) Decode(b []byte) error { return m.DecodeWith(b, nil) }

// DecodeWith is Decode with strings taken from s when it holds them
// (nil: every string is a new copy).
func (m *Result) DecodeWith(b []byte, s *Strings) error {
	d := decoder{wire.NewDecoder(b, "cloud result")}
	d.ReuseStrings(s)
	v := Result{Req: d.U32("req"), Code: cloud.Code(d.U16("code")), Message: d.Str16("message", MaxMessage)}
	flags := d.Flags(flagTruncated | flagPartial)
	v.Truncated = flags&flagTruncated != 0
	v.Partial = flags&flagPartial != 0
	v.Total = d.U32("total")
	v.Missing = d.keys("missing")
	v.Rows = d.rows()
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// NoticeType says what happened to a row.
type NoticeType uint8

// Notice types.
const (
	Updated NoticeType = 1 // the row was created or overwritten
	Deleted NoticeType = 2 // the row was deleted; Row holds its last value
)

func (t NoticeType) String() string {
	switch t {
	case Updated:
		return "updated"
	case Deleted:
		return "deleted"
	}
	return fmt.Sprintf("notice(%d)", uint8(t))
}

// Notice tells a subscriber that a row changed. The same encoding
// travels from a replica to a subscribing server (KindCloudSrvNotify) and
// from that server to its subscribing clients (KindCloudNotify).
type Notice struct {
	Type    NoticeType
	Created bool // Updated only: the row did not exist before
	Row     cloud.Row
}

func (m *Notice) AppendTo(dst []byte) []byte {
	dst = slices.Grow(dst, 2+RowSize(&m.Row))
	var flags byte
	if m.Created {
		flags |= flagCreated
	}
	dst = append(dst, byte(m.Type), flags)
	return AppendRow(dst, &m.Row)
}

func (m *Notice) Decode(b []byte) error { return m.DecodeWith(b, nil) }

// DecodeWith is Decode with strings taken from s when it holds them
// (nil: every string is a new copy).
func (m *Notice) DecodeWith(b []byte, s *Strings) error {
	d := decoder{wire.NewDecoder(b, "cloud notice")}
	d.ReuseStrings(s)
	var v Notice
	v.Type = NoticeType(d.U8("type"))
	flags := d.Flags(flagCreated)
	v.Created = flags&flagCreated != 0
	v.Row = d.row()
	if d.Err() == nil {
		switch {
		case v.Type != Updated && v.Type != Deleted:
			d.Failf("unknown type %d", v.Type)
		case v.Type == Deleted && v.Created:
			d.Failf("created flag on a deletion")
		}
	}
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// Resync replaces everything a subscriber holds for Key with Rows
// (those matching its uploader filter): sent when its subscription moved
// to another replica, when a late part of a partial Get arrived, or after
// notifications could not be delivered. Truncated says the rows were cut
// by the download byte limit.
type Resync struct {
	Truncated bool
	Key       cloud.Key
	Rows      []cloud.Row
}

func (m *Resync) AppendTo(dst []byte) []byte {
	dst = slices.Grow(dst, 1+keySize(m.Key)+rowsSize(m.Rows))
	var flags byte
	if m.Truncated {
		flags |= flagTruncated
	}
	dst = append(dst, flags)
	dst = appendKey(dst, m.Key)
	return appendRows(dst, m.Rows)
}

func (m *Resync) Decode(b []byte) error { return m.DecodeWith(b, nil) }

// DecodeWith is Decode with strings taken from s when it holds them
// (nil: every string is a new copy).
func (m *Resync) DecodeWith(b []byte, s *Strings) error {
	d := decoder{wire.NewDecoder(b, "cloud resync")}
	d.ReuseStrings(s)
	var v Resync
	v.Truncated = d.Flags(flagTruncated)&flagTruncated != 0
	v.Key = d.key()
	v.Rows = d.rows()
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}
