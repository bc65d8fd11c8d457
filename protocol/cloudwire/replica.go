package cloudwire

import (
	"encoding/binary"
	"hash/fnv"
	"slices"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/internal/wire"
)

// Messages between a server and a cloud-memory replica (kinds 80–91).
// Request IDs are the server's; a replica answers with SrvReply or
// SrvResult, and pushes Notices (KindCloudSrvNotify) and SrvMoved.

// SrvPost is a Post forwarded to the key's owner replica, with the
// uploader's identity. Sync marks a re-post of a row the replica may
// already hold (after a link or replica-set change): an identical row is
// then not notified again.
type SrvPost struct {
	Req      uint64
	Sync     bool
	Key      cloud.Key
	Uploader protocol.ClientRef
	Addr     string
	Data     []byte // aliases the decoded payload
}

func (m *SrvPost) AppendTo(dst []byte) []byte {
	dst = slices.Grow(dst, 8+1+keySize(m.Key)+refSize(m.Uploader)+1+len(m.Addr)+len(m.Data))
	dst = binary.BigEndian.AppendUint64(dst, m.Req)
	var flags byte
	if m.Sync {
		flags |= srvFlagSync
	}
	dst = append(dst, flags)
	dst = appendKey(dst, m.Key)
	dst = protocol.AppendClientRef(dst, m.Uploader)
	dst = wire.AppendStr8(dst, m.Addr)
	return append(dst, m.Data...)
}

func (m *SrvPost) Decode(b []byte) error { return m.DecodeWith(b, nil) }

// DecodeWith is Decode with strings taken from s when it holds them
// (nil: every string is a new copy).
func (m *SrvPost) DecodeWith(b []byte, s *Strings) error {
	d := decoder{wire.NewDecoder(b, "cloud server post")}
	d.ReuseStrings(s)
	v := SrvPost{Req: d.U64("req")}
	v.Sync = d.Flags(srvFlagSync)&srvFlagSync != 0
	v.Key = d.key()
	v.Uploader = d.ref("uploader")
	v.Addr = d.Str8("addr")
	v.Data = d.Rest()
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// SrvRelease deletes an uploader's rows under Keys. Addr is the
// uploader's address, for query filters.
type SrvRelease struct {
	Req      uint64
	Uploader protocol.ClientRef
	Addr     string
	Keys     []cloud.Key
}

func (m *SrvRelease) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, m.Req)
	dst = protocol.AppendClientRef(dst, m.Uploader)
	dst = wire.AppendStr8(dst, m.Addr)
	return appendKeys(dst, m.Keys)
}

func (m *SrvRelease) Decode(b []byte) error {
	d := decoder{wire.NewDecoder(b, "cloud server release")}
	v := SrvRelease{Req: d.U64("req"), Uploader: d.ref("uploader"), Addr: d.Str8("addr"), Keys: d.keys("keys")}
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// SrvGet reads rows of keys one replica owns. Offset and Limit apply
// to the replica's own ordering of the rows of these keys (query key
// order, then uploader); MaxBytes caps the encoded rows returned (at
// least one row); CountOnly returns counts and no rows. Sync marks a
// resync read. Asker and Addr say who asks, for query filters.
type SrvGet struct {
	Req       uint64
	Sync      bool
	CountOnly bool
	Asker     protocol.ClientRef
	Addr      string
	Offset    uint32
	Limit     uint32 // 0: no cap
	MaxBytes  uint32 // 0: no cap
	Keys      []cloud.Key
	Uploaders []protocol.ClientRef
}

func (m *SrvGet) AppendTo(dst []byte) []byte {
	dst = slices.Grow(dst, 8+1+refSize(m.Asker)+1+len(m.Addr)+4+4+4+keysSize(m.Keys)+refsSize(m.Uploaders))
	dst = binary.BigEndian.AppendUint64(dst, m.Req)
	var flags byte
	if m.Sync {
		flags |= srvFlagSync
	}
	if m.CountOnly {
		flags |= srvFlagCountOnly
	}
	dst = append(dst, flags)
	dst = protocol.AppendClientRef(dst, m.Asker)
	dst = wire.AppendStr8(dst, m.Addr)
	dst = binary.BigEndian.AppendUint32(dst, m.Offset)
	dst = binary.BigEndian.AppendUint32(dst, m.Limit)
	dst = binary.BigEndian.AppendUint32(dst, m.MaxBytes)
	dst = appendKeys(dst, m.Keys)
	return appendRefs(dst, m.Uploaders)
}

func (m *SrvGet) Decode(b []byte) error { return m.DecodeWith(b, nil) }

// DecodeWith is Decode with strings taken from s when it holds them
// (nil: every string is a new copy).
func (m *SrvGet) DecodeWith(b []byte, s *Strings) error {
	d := decoder{wire.NewDecoder(b, "cloud server get")}
	d.ReuseStrings(s)
	v := SrvGet{Req: d.U64("req")}
	flags := d.Flags(srvFlagSync | srvFlagCountOnly)
	v.Sync = flags&srvFlagSync != 0
	v.CountOnly = flags&srvFlagCountOnly != 0
	v.Asker = d.ref("asker")
	v.Addr = d.Str8("addr")
	v.Offset = d.U32("offset")
	v.Limit = d.U32("limit")
	v.MaxBytes = d.U32("max bytes")
	v.Keys = d.keys("keys")
	v.Uploaders = d.refs("uploaders")
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// SubMode says what a SrvSub does to the sender's subscription
// to each key.
type SubMode uint8

// Subscription modes.
const (
	SubRemove SubMode = 0 // the server no longer subscribes
	SubAll    SubMode = 1 // notify changes of every uploader
	SubList   SubMode = 2 // notify changes of the listed uploaders only
)

// SrvSub sets the sending server's subscription to Keys at their
// owner: the union of what its own subscribers asked for. A replica
// ignores keys it does not own.
type SrvSub struct {
	Mode      SubMode
	Keys      []cloud.Key
	Uploaders []protocol.ClientRef // SubList only; empty otherwise
}

func (m *SrvSub) AppendTo(dst []byte) []byte {
	dst = append(dst, byte(m.Mode))
	dst = appendKeys(dst, m.Keys)
	return appendRefs(dst, m.Uploaders)
}

func (m *SrvSub) Decode(b []byte) error {
	d := decoder{wire.NewDecoder(b, "cloud server sub")}
	v := SrvSub{Mode: SubMode(d.U8("mode")), Keys: d.keys("keys"), Uploaders: d.refs("uploaders")}
	if d.Err() == nil {
		switch {
		case v.Mode > SubList:
			d.Failf("unknown mode %d", v.Mode)
		case v.Mode == SubList && len(v.Uploaders) == 0:
			d.Failf("list mode without uploaders")
		case v.Mode != SubList && len(v.Uploaders) != 0:
			d.Failf("uploaders outside list mode")
		}
	}
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// SrvDrop deletes every row of an uploader (it disconnected).
type SrvDrop struct {
	Uploader protocol.ClientRef
}

func (m *SrvDrop) AppendTo(dst []byte) []byte { return protocol.AppendClientRef(dst, m.Uploader) }

func (m *SrvDrop) Decode(b []byte) error {
	d := decoder{wire.NewDecoder(b, "cloud server drop")}
	v := SrvDrop{Uploader: d.ref("uploader")}
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// SyncOp is a step of a server's resynchronisation with a replica.
type SyncOp uint8

// Sync operations.
const (
	// SyncStart: every row that came through the sender is now stale
	// until posted again.
	SyncStart SyncOp = 1
	// SyncEnd: delete (and notify) the sender's rows still stale.
	SyncEnd SyncOp = 2
	// SyncBye: the sender is shutting down; delete its rows now.
	SyncBye SyncOp = 3
	// SyncRing: the sender holds no row for a key the receiver owns, in
	// the replica set whose RingDigest is Ring, that is not placed at the
	// receiver. A replica that took keys over serves them once every
	// server that may hold rows for them said so for its current set.
	SyncRing SyncOp = 4
)

// SrvSync is one sync step. Ring is set for SyncRing only.
type SrvSync struct {
	Op   SyncOp
	Ring uint64
}

func (m *SrvSync) AppendTo(dst []byte) []byte {
	dst = append(dst, byte(m.Op))
	if m.Op == SyncRing {
		dst = binary.BigEndian.AppendUint64(dst, m.Ring)
	}
	return dst
}

func (m *SrvSync) Decode(b []byte) error {
	d := decoder{wire.NewDecoder(b, "cloud server sync")}
	v := SrvSync{Op: SyncOp(d.U8("op"))}
	if d.Err() == nil && (v.Op < SyncStart || v.Op > SyncRing) {
		d.Failf("unknown op %d", v.Op)
	}
	if v.Op == SyncRing {
		v.Ring = d.U64("ring")
	}
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// RingDigest names a set of replica IDs: the same IDs, in any order,
// give the same digest (FNV-1a over the sorted IDs, each ended by a
// zero byte). A server and a replica compare their sets with it.
func RingDigest(ids []string) uint64 {
	s := slices.Clone(ids)
	slices.Sort(s)
	h := fnv.New64a()
	for _, id := range slices.Compact(s) {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// SrvReply answers a SrvPost or SrvRelease.
type SrvReply struct {
	Req     uint64
	Code    cloud.Code
	Message string
}

func (m *SrvReply) AppendTo(dst []byte) []byte {
	dst = slices.Grow(dst, 8+2+2+len(m.Message))
	dst = binary.BigEndian.AppendUint64(dst, m.Req)
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Code))
	return appendMsg(dst, m.Message)
}

func (m *SrvReply) Decode(b []byte) error {
	d := decoder{wire.NewDecoder(b, "cloud server reply")}
	v := SrvReply{Req: d.U64("req"), Code: cloud.Code(d.U16("code")), Message: d.Str16("message", MaxMessage)}
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// SrvResult answers a SrvGet: Counts[i] is the number of
// matching rows of the request's Keys[i]; Rows are the requested window,
// grouped by key in request order; Cut says MaxBytes stopped the rows
// before the window's end. Refused lists the keys the replica did not
// read (their count is 0 and they have no rows), in request order; the
// others were read as if the request had named them alone.
type SrvResult struct {
	Req     uint64
	Code    cloud.Code
	Message string
	Cut     bool
	Counts  []uint32
	Rows    []cloud.Row // Data fields alias the decoded payload
	Refused []Refusal
}

// refusalsSize is the encoded size of a result's refusals.
func refusalsSize(rs []Refusal) int {
	if len(rs) == 0 {
		return 0
	}
	return 2 + 4*len(rs)
}

// Refusal is a key of a SrvGet that the replica did not read, and why:
// cloud.CodeNotOwner (another replica owns it) or cloud.CodeUnavailable
// (this replica took it over and its rows are still arriving). The
// server asks again, for that key only.
type Refusal struct {
	Index uint16 // into the request's Keys
	Code  cloud.Code
}

func (m *SrvResult) AppendTo(dst []byte) []byte {
	dst = slices.Grow(dst, 8+2+2+len(m.Message)+1+2+4*len(m.Counts)+rowsSize(m.Rows)+refusalsSize(m.Refused))
	dst = binary.BigEndian.AppendUint64(dst, m.Req)
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Code))
	dst = appendMsg(dst, m.Message)
	var flags byte
	if m.Cut {
		flags |= srvFlagCut
	}
	if len(m.Refused) > 0 {
		flags |= srvFlagRefused
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Counts)))
	for _, c := range m.Counts {
		dst = binary.BigEndian.AppendUint32(dst, c)
	}
	dst = appendRows(dst, m.Rows)
	if len(m.Refused) > 0 {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Refused)))
		for _, r := range m.Refused {
			dst = binary.BigEndian.AppendUint16(dst, r.Index)
			dst = binary.BigEndian.AppendUint16(dst, uint16(r.Code))
		}
	}
	return dst
}

func (m *SrvResult) Decode(b []byte) error { return m.DecodeWith(b, nil) }

// DecodeWith is Decode with strings taken from s when it holds them
// (nil: every string is a new copy).
func (m *SrvResult) DecodeWith(b []byte, s *Strings) error {
	d := decoder{wire.NewDecoder(b, "cloud server result")}
	d.ReuseStrings(s)
	v := SrvResult{Req: d.U64("req"), Code: cloud.Code(d.U16("code")), Message: d.Str16("message", MaxMessage)}
	flags := d.Flags(srvFlagCut | srvFlagRefused)
	v.Cut = flags&srvFlagCut != 0
	if n := int(d.U16("counts")); d.Err() == nil && d.Check(n, 4, "counts") {
		v.Counts = make([]uint32, n)
		for i := range v.Counts {
			v.Counts[i] = d.U32("count")
		}
	}
	v.Rows = d.rows()
	if flags&srvFlagRefused != 0 {
		v.Refused = d.refusals(len(v.Counts))
	}
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// SrvMoved tells a server that the sending replica's set changed and it
// no longer owns Keys: the server's rows and subscriptions there were
// dropped, so it places them again with the keys' new owner. It also
// asks the server to confirm its placement again (SyncRing), which an
// SrvMoved with no keys asks alone.
type SrvMoved struct {
	Keys []cloud.Key
}

func (m *SrvMoved) AppendTo(dst []byte) []byte { return appendKeys(dst, m.Keys) }

func (m *SrvMoved) Decode(b []byte) error {
	d := decoder{wire.NewDecoder(b, "cloud server moved")}
	v := SrvMoved{Keys: d.keys("keys")}
	if err := d.Finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// Encoding helpers. Callers validate keys (cloud.Key.Validate) and keep
// lists within cloud.MaxKeys; the appenders cut what does not fit, which
// the receiver then sees.

// refusals decodes a SrvResult's refused keys: at least one, indexes
// increasing and below n, codes other than OK.
func (d *decoder) refusals(n int) []Refusal {
	c := int(d.U16("refused count"))
	if d.Err() != nil {
		return nil
	}
	if c == 0 {
		d.Failf("refused flag without refused keys")
		return nil
	}
	if !d.Check(c, 4, "refused") {
		return nil
	}
	rs := make([]Refusal, c)
	for i := range rs {
		rs[i] = Refusal{Index: d.U16("refused index"), Code: cloud.Code(d.U16("refused code"))}
		switch {
		case d.Err() != nil:
			return nil
		case int(rs[i].Index) >= n:
			d.Failf("refused key %d of %d", rs[i].Index, n)
		case i > 0 && rs[i].Index <= rs[i-1].Index:
			d.Failf("refused keys out of order")
		case rs[i].Code == cloud.CodeOK:
			d.Failf("refused key %d with code OK", rs[i].Index)
		}
	}
	return rs
}
