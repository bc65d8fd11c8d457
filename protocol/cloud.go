package protocol

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Cloud-memory payloads. Kinds 64–95 are extension kinds: the runtime hands
// them to the plugin that claims them (the cloud memory claims the ones
// below). Two conversations use them:
//
//   - a game client and its external server (client kinds 64–71), where
//     request IDs are chosen by the client;
//   - a server and a cloud-memory replica over a link (server kinds 80–91),
//     where request IDs are chosen by the server.
//
// Every request that expects an answer carries a request ID, and every
// answer carries a CloudCode and a message. Encodings are big-endian and
// canonical (Decode rejects anything AppendTo would not produce, so a
// decoded value re-encodes to its input):
//
//	key:  str8 primary | u32 secondary
//	ref:  str8 server | u64 id                      (a ClientRef)
//	row:  key | ref uploader | str8 addr | str8 via | u32 n | n bytes data
//	keys: u16 n | n × key
//	refs: u16 n | n × ref
//	msg:  u16 n | n bytes UTF-8, at most MaxCloudMessage
//
// Client kinds:
//
//	CloudPost:        u32 req | key | data (the rest)
//	CloudRelease:     u32 req | keys
//	CloudGet:         u32 req | u8 flags | u32 offset | u32 limit | keys | refs uploaders
//	CloudUnsubscribe: u32 req | keys | refs uploaders
//	CloudReply:       u32 req | u16 code | msg
//	CloudResult:      u32 req | u16 code | msg | u8 flags | u32 total | keys missing | u32 n | n × row
//	CloudNotice:      u8 type | u8 flags | row
//	CloudResync:      u8 flags | key | u32 n | n × row
//
// Server kinds:
//
//	CloudSrvPost:    u64 req | u8 flags | key | ref uploader | str8 addr | data (the rest)
//	CloudSrvRelease: u64 req | ref uploader | str8 addr | keys
//	CloudSrvGet:     u64 req | u8 flags | ref asker | str8 addr | u32 offset | u32 limit | u32 maxBytes | keys | refs uploaders
//	CloudSrvSub:     u8 mode | keys | refs uploaders
//	CloudSrvDrop:    ref uploader
//	CloudSrvSync:    u8 op
//	CloudSrvReply:   u64 req | u16 code | msg
//	CloudSrvResult:  u64 req | u16 code | msg | u8 flags | u16 n | n × u32 count | u32 m | m × row
//	CloudSrvNotify:  a CloudNotice
//	CloudSrvMoved:   keys
//
// Decoded strings are copies; decoded Data fields alias the input unless
// the type says otherwise. Decoders never allocate more than the input
// can hold: every count is checked against the bytes left before anything
// is allocated for it.

// Extension kinds: frames of these kinds are handed to the plugin that
// claims them (plugins.FrameHandler); a server closes a connection that
// sends one nobody claims.
const (
	FirstExtensionKind Kind = 64
	LastExtensionKind  Kind = 95
)

// IsExtensionKind reports whether k is between FirstExtensionKind and
// LastExtensionKind.
func IsExtensionKind(k Kind) bool { return k >= FirstExtensionKind && k <= LastExtensionKind }

// Cloud-memory kinds.
const (
	// Game client ↔ external server.
	KindCloudPost        Kind = 64 // client → server: CloudPost
	KindCloudRelease     Kind = 65 // client → server: CloudRelease
	KindCloudGet         Kind = 66 // client → server: CloudGet
	KindCloudUnsubscribe Kind = 67 // client → server: CloudUnsubscribe
	KindCloudReply       Kind = 68 // server → client: CloudReply to Post, Release, Unsubscribe
	KindCloudResult      Kind = 69 // server → client: CloudResult to Get
	KindCloudNotify      Kind = 70 // server → client: CloudNotice
	KindCloudResync      Kind = 71 // server → client: CloudResync

	// Server ↔ cloud-memory replica.
	KindCloudSrvPost    Kind = 80 // server → replica: CloudSrvPost
	KindCloudSrvRelease Kind = 81 // server → replica: CloudSrvRelease
	KindCloudSrvGet     Kind = 82 // server → replica: CloudSrvGet
	KindCloudSrvSub     Kind = 83 // server → replica: CloudSrvSub
	KindCloudSrvDrop    Kind = 84 // server → replica: CloudSrvDrop
	KindCloudSrvSync    Kind = 85 // server → replica: CloudSrvSync
	KindCloudSrvReply   Kind = 88 // replica → server: CloudSrvReply to Post, Release
	KindCloudSrvResult  Kind = 89 // replica → server: CloudSrvResult to Get
	KindCloudSrvNotify  Kind = 90 // replica → server: CloudNotice
	KindCloudSrvMoved   Kind = 91 // replica → server: CloudSrvMoved
)

var cloudKindNames = map[Kind]string{
	KindCloudPost:        "cloud-post",
	KindCloudRelease:     "cloud-release",
	KindCloudGet:         "cloud-get",
	KindCloudUnsubscribe: "cloud-unsubscribe",
	KindCloudReply:       "cloud-reply",
	KindCloudResult:      "cloud-result",
	KindCloudNotify:      "cloud-notify",
	KindCloudResync:      "cloud-resync",
	KindCloudSrvPost:     "cloud-srv-post",
	KindCloudSrvRelease:  "cloud-srv-release",
	KindCloudSrvGet:      "cloud-srv-get",
	KindCloudSrvSub:      "cloud-srv-sub",
	KindCloudSrvDrop:     "cloud-srv-drop",
	KindCloudSrvSync:     "cloud-srv-sync",
	KindCloudSrvReply:    "cloud-srv-reply",
	KindCloudSrvResult:   "cloud-srv-result",
	KindCloudSrvNotify:   "cloud-srv-notify",
	KindCloudSrvMoved:    "cloud-srv-moved",
}

// Size limits of cloud payloads.
const (
	// MaxCloudPrimary is the longest primary key, in bytes.
	MaxCloudPrimary = 255
	// MaxCloudMessage is the longest error message an answer carries.
	MaxCloudMessage = 1024
	// MaxCloudKeys is the most keys (or uploaders) one payload lists.
	MaxCloudKeys = 1<<16 - 1
)

// CloudCode is the outcome of a cloud-memory request.
type CloudCode uint16

// Cloud codes. Every limit has its own code; none of them changes a stored
// row.
const (
	CloudOK                   CloudCode = 0
	CloudBadRequest           CloudCode = 1  // malformed or invalid request (no keys, key too long, ...)
	CloudNotOwner             CloudCode = 2  // replica: the key is owned by another replica; retry after refreshing
	CloudUnavailable          CloudCode = 3  // no replica answered in time, or none is reachable
	CloudRejected             CloudCode = 4  // a query filter rejected the operation
	CloudUploadLimit          CloudCode = 5  // the uploader's rows would exceed the upload bytes limit
	CloudRowTooLarge          CloudCode = 6  // the row's data exceeds the row size limit
	CloudTooManyKeys          CloudCode = 7  // the query names more keys than allowed
	CloudTooManySubscriptions CloudCode = 8  // the subscriber would exceed its subscriptions limit
	CloudNotSubscribed        CloudCode = 9  // Unsubscribe of a key (or uploader) that is not subscribed
	CloudSubscribedToAll      CloudCode = 10 // Unsubscribe of uploaders from an all-uploader subscription
	CloudTimeout              CloudCode = 11 // the operation was not confirmed in time
	CloudShuttingDown         CloudCode = 12 // the server is shutting down
)

var cloudCodeNames = [...]string{
	CloudOK:                   "ok",
	CloudBadRequest:           "bad request",
	CloudNotOwner:             "not owner",
	CloudUnavailable:          "unavailable",
	CloudRejected:             "rejected",
	CloudUploadLimit:          "upload limit",
	CloudRowTooLarge:          "row too large",
	CloudTooManyKeys:          "too many keys",
	CloudTooManySubscriptions: "too many subscriptions",
	CloudNotSubscribed:        "not subscribed",
	CloudSubscribedToAll:      "subscribed to all uploaders",
	CloudTimeout:              "timeout",
	CloudShuttingDown:         "shutting down",
}

func (c CloudCode) String() string {
	if int(c) < len(cloudCodeNames) && cloudCodeNames[c] != "" {
		return cloudCodeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint16(c))
}

// CloudKey identifies what a row is about; many uploaders may hold a row
// under one key.
type CloudKey struct {
	Primary   string // valid UTF-8, at most MaxCloudPrimary bytes
	Secondary uint32
}

// String formats the key as "primary/secondary".
func (k CloudKey) String() string { return fmt.Sprintf("%s/%d", k.Primary, k.Secondary) }

// Validate reports whether k can be encoded: a valid UTF-8 primary of at
// most MaxCloudPrimary bytes.
func (k CloudKey) Validate() error {
	if len(k.Primary) > MaxCloudPrimary {
		return fmt.Errorf("key primary of %d bytes, limit %d", len(k.Primary), MaxCloudPrimary)
	}
	if !utf8.ValidString(k.Primary) {
		return fmt.Errorf("key primary %q is not valid UTF-8", k.Primary)
	}
	return nil
}

// CompareRefs orders ClientRefs by server, then ID: the uploader order of
// cloud-memory results.
func CompareRefs(a, b ClientRef) int {
	if c := strings.Compare(a.Server, b.Server); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// CloudRow is one row: the data one uploader holds under one key.
type CloudRow struct {
	Key      CloudKey
	Uploader ClientRef // the client (or server, ID 0) that posted it
	Addr     string    // the uploader's remote address ("" for a server)
	Via      string    // the server the row came through
	Data     []byte
}

// EncodedSize returns the bytes r takes in a payload.
func (r *CloudRow) EncodedSize() int {
	return 1 + len(r.Key.Primary) + 4 + 1 + len(r.Uploader.Server) + 8 + 1 + len(r.Addr) + 1 + len(r.Via) + 4 + len(r.Data)
}

// minRowSize is the smallest encoded row.
const minRowSize = 5 + 9 + 1 + 1 + 4

// CloudQuery asks for rows.
type CloudQuery struct {
	// Keys to read, in the order results come back. Required.
	Keys []CloudKey
	// Uploaders, when not empty, limits the rows (and, with Subscribe, the
	// notifications) to these uploaders: RakNet's specificSystems.
	Uploaders []ClientRef
	// Offset skips that many rows of the ordered result; Limit caps how
	// many come back (0: no cap).
	Offset, Limit uint32
	// Subscribe also subscribes to the keys, atomically with the
	// snapshot: notifications follow for every change after it.
	Subscribe bool
}

// Flag bits.
const (
	cloudFlagSubscribe = 1 << 0 // CloudGet

	cloudFlagTruncated = 1 << 0 // CloudResult, CloudResync
	cloudFlagPartial   = 1 << 1 // CloudResult

	cloudFlagCreated = 1 << 0 // CloudNotice

	srvFlagSync      = 1 << 0 // CloudSrvPost, CloudSrvGet
	srvFlagCountOnly = 1 << 1 // CloudSrvGet

	srvFlagCut = 1 << 0 // CloudSrvResult
)

// CloudPost is a client's Post.
type CloudPost struct {
	Req  uint32
	Key  CloudKey
	Data []byte // aliases the decoded payload
}

func (m *CloudPost) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, m.Req)
	dst = appendKey(dst, m.Key)
	return append(dst, m.Data...)
}

func (m *CloudPost) Decode(b []byte) error {
	d := decoder{b: b, msg: "cloud post"}
	v := CloudPost{Req: d.u32("req"), Key: d.key()}
	v.Data = d.rest()
	if err := d.finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CloudRelease is a client's Release of its own rows under Keys.
type CloudRelease struct {
	Req  uint32
	Keys []CloudKey
}

func (m *CloudRelease) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, m.Req)
	return appendKeys(dst, m.Keys)
}

func (m *CloudRelease) Decode(b []byte) error {
	d := decoder{b: b, msg: "cloud release"}
	v := CloudRelease{Req: d.u32("req"), Keys: d.keys("keys")}
	if err := d.finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CloudGet is a client's Get.
type CloudGet struct {
	Req   uint32
	Query CloudQuery
}

func (m *CloudGet) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, m.Req)
	var flags byte
	if m.Query.Subscribe {
		flags |= cloudFlagSubscribe
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint32(dst, m.Query.Offset)
	dst = binary.BigEndian.AppendUint32(dst, m.Query.Limit)
	dst = appendKeys(dst, m.Query.Keys)
	return appendRefs(dst, m.Query.Uploaders)
}

func (m *CloudGet) Decode(b []byte) error {
	d := decoder{b: b, msg: "cloud get"}
	v := CloudGet{Req: d.u32("req")}
	flags := d.flags(cloudFlagSubscribe)
	v.Query.Subscribe = flags&cloudFlagSubscribe != 0
	v.Query.Offset = d.u32("offset")
	v.Query.Limit = d.u32("limit")
	v.Query.Keys = d.keys("keys")
	v.Query.Uploaders = d.refs("uploaders")
	if err := d.finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CloudUnsubscribe is a client's Unsubscribe: the whole subscription to
// each key when Uploaders is empty, else only those uploaders.
type CloudUnsubscribe struct {
	Req       uint32
	Keys      []CloudKey
	Uploaders []ClientRef
}

func (m *CloudUnsubscribe) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, m.Req)
	dst = appendKeys(dst, m.Keys)
	return appendRefs(dst, m.Uploaders)
}

func (m *CloudUnsubscribe) Decode(b []byte) error {
	d := decoder{b: b, msg: "cloud unsubscribe"}
	v := CloudUnsubscribe{Req: d.u32("req"), Keys: d.keys("keys"), Uploaders: d.refs("uploaders")}
	if err := d.finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CloudReply answers a client's Post, Release or Unsubscribe.
type CloudReply struct {
	Req     uint32
	Code    CloudCode
	Message string // at most MaxCloudMessage bytes; AppendTo cuts a longer one
}

func (m *CloudReply) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, m.Req)
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Code))
	return appendMsg(dst, m.Message)
}

func (m *CloudReply) Decode(b []byte) error {
	d := decoder{b: b, msg: "cloud reply"}
	v := CloudReply{Req: d.u32("req"), Code: CloudCode(d.u16("code")), Message: d.str16("message", MaxCloudMessage)}
	if err := d.finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CloudResult answers a client's Get. Rows come in query key order, then
// uploader order (CompareRefs), after Offset and within Limit.
type CloudResult struct {
	Req     uint32
	Code    CloudCode
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
	Missing []CloudKey
	Rows    []CloudRow // Data fields alias the decoded payload
}

func (m *CloudResult) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, m.Req)
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Code))
	dst = appendMsg(dst, m.Message)
	var flags byte
	if m.Truncated {
		flags |= cloudFlagTruncated
	}
	if m.Partial {
		flags |= cloudFlagPartial
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint32(dst, m.Total)
	dst = appendKeys(dst, m.Missing)
	return appendRows(dst, m.Rows)
}

func (m *CloudResult) Decode(b []byte) error {
	d := decoder{b: b, msg: "cloud result"}
	v := CloudResult{Req: d.u32("req"), Code: CloudCode(d.u16("code")), Message: d.str16("message", MaxCloudMessage)}
	flags := d.flags(cloudFlagTruncated | cloudFlagPartial)
	v.Truncated = flags&cloudFlagTruncated != 0
	v.Partial = flags&cloudFlagPartial != 0
	v.Total = d.u32("total")
	v.Missing = d.keys("missing")
	v.Rows = d.rows()
	if err := d.finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CloudNoticeType says what happened to a row.
type CloudNoticeType uint8

// Notice types.
const (
	CloudUpdated CloudNoticeType = 1 // the row was created or overwritten
	CloudDeleted CloudNoticeType = 2 // the row was deleted; Row holds its last value
)

func (t CloudNoticeType) String() string {
	switch t {
	case CloudUpdated:
		return "updated"
	case CloudDeleted:
		return "deleted"
	}
	return fmt.Sprintf("notice(%d)", uint8(t))
}

// CloudNotice tells a subscriber that a row changed. The same encoding
// travels from a replica to a subscribing server (KindCloudSrvNotify) and
// from that server to its subscribing clients (KindCloudNotify).
type CloudNotice struct {
	Type    CloudNoticeType
	Created bool // Updated only: the row did not exist before
	Row     CloudRow
}

func (m *CloudNotice) AppendTo(dst []byte) []byte {
	var flags byte
	if m.Created {
		flags |= cloudFlagCreated
	}
	dst = append(dst, byte(m.Type), flags)
	return appendRow(dst, &m.Row)
}

func (m *CloudNotice) Decode(b []byte) error {
	d := decoder{b: b, msg: "cloud notice"}
	var v CloudNotice
	v.Type = CloudNoticeType(d.u8("type"))
	flags := d.flags(cloudFlagCreated)
	v.Created = flags&cloudFlagCreated != 0
	v.Row = d.row()
	if d.err == nil {
		switch {
		case v.Type != CloudUpdated && v.Type != CloudDeleted:
			d.err = fmt.Errorf("%w: cloud notice: unknown type %d", ErrMalformed, v.Type)
		case v.Type == CloudDeleted && v.Created:
			d.err = fmt.Errorf("%w: cloud notice: created flag on a deletion", ErrMalformed)
		}
	}
	if err := d.finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CloudResync replaces everything a subscriber holds for Key with Rows
// (those matching its uploader filter): sent when its subscription moved
// to another replica, when a late part of a partial Get arrived, or after
// notifications could not be delivered. Truncated says the rows were cut
// by the download byte limit.
type CloudResync struct {
	Truncated bool
	Key       CloudKey
	Rows      []CloudRow
}

func (m *CloudResync) AppendTo(dst []byte) []byte {
	var flags byte
	if m.Truncated {
		flags |= cloudFlagTruncated
	}
	dst = append(dst, flags)
	dst = appendKey(dst, m.Key)
	return appendRows(dst, m.Rows)
}

func (m *CloudResync) Decode(b []byte) error {
	d := decoder{b: b, msg: "cloud resync"}
	var v CloudResync
	v.Truncated = d.flags(cloudFlagTruncated)&cloudFlagTruncated != 0
	v.Key = d.key()
	v.Rows = d.rows()
	if err := d.finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CloudSrvPost is a Post forwarded to the key's owner replica, with the
// uploader's identity. Sync marks a re-post of a row the replica may
// already hold (after a link or replica-set change): an identical row is
// then not notified again.
type CloudSrvPost struct {
	Req      uint64
	Sync     bool
	Key      CloudKey
	Uploader ClientRef
	Addr     string
	Data     []byte // aliases the decoded payload
}

func (m *CloudSrvPost) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, m.Req)
	var flags byte
	if m.Sync {
		flags |= srvFlagSync
	}
	dst = append(dst, flags)
	dst = appendKey(dst, m.Key)
	dst = AppendClientRef(dst, m.Uploader)
	dst = appendStr8(dst, m.Addr)
	return append(dst, m.Data...)
}

func (m *CloudSrvPost) Decode(b []byte) error {
	d := decoder{b: b, msg: "cloud server post"}
	v := CloudSrvPost{Req: d.u64("req")}
	v.Sync = d.flags(srvFlagSync)&srvFlagSync != 0
	v.Key = d.key()
	v.Uploader = d.ref("uploader")
	v.Addr = d.str8("addr")
	v.Data = d.rest()
	if err := d.finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CloudSrvRelease deletes an uploader's rows under Keys. Addr is the
// uploader's address, for query filters.
type CloudSrvRelease struct {
	Req      uint64
	Uploader ClientRef
	Addr     string
	Keys     []CloudKey
}

func (m *CloudSrvRelease) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, m.Req)
	dst = AppendClientRef(dst, m.Uploader)
	dst = appendStr8(dst, m.Addr)
	return appendKeys(dst, m.Keys)
}

func (m *CloudSrvRelease) Decode(b []byte) error {
	d := decoder{b: b, msg: "cloud server release"}
	v := CloudSrvRelease{Req: d.u64("req"), Uploader: d.ref("uploader"), Addr: d.str8("addr"), Keys: d.keys("keys")}
	if err := d.finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CloudSrvGet reads rows of keys one replica owns. Offset and Limit apply
// to the replica's own ordering of the rows of these keys (query key
// order, then uploader); MaxBytes caps the encoded rows returned (at
// least one row); CountOnly returns counts and no rows. Sync marks a
// resync read. Asker and Addr say who asks, for query filters.
type CloudSrvGet struct {
	Req       uint64
	Sync      bool
	CountOnly bool
	Asker     ClientRef
	Addr      string
	Offset    uint32
	Limit     uint32 // 0: no cap
	MaxBytes  uint32 // 0: no cap
	Keys      []CloudKey
	Uploaders []ClientRef
}

func (m *CloudSrvGet) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, m.Req)
	var flags byte
	if m.Sync {
		flags |= srvFlagSync
	}
	if m.CountOnly {
		flags |= srvFlagCountOnly
	}
	dst = append(dst, flags)
	dst = AppendClientRef(dst, m.Asker)
	dst = appendStr8(dst, m.Addr)
	dst = binary.BigEndian.AppendUint32(dst, m.Offset)
	dst = binary.BigEndian.AppendUint32(dst, m.Limit)
	dst = binary.BigEndian.AppendUint32(dst, m.MaxBytes)
	dst = appendKeys(dst, m.Keys)
	return appendRefs(dst, m.Uploaders)
}

func (m *CloudSrvGet) Decode(b []byte) error {
	d := decoder{b: b, msg: "cloud server get"}
	v := CloudSrvGet{Req: d.u64("req")}
	flags := d.flags(srvFlagSync | srvFlagCountOnly)
	v.Sync = flags&srvFlagSync != 0
	v.CountOnly = flags&srvFlagCountOnly != 0
	v.Asker = d.ref("asker")
	v.Addr = d.str8("addr")
	v.Offset = d.u32("offset")
	v.Limit = d.u32("limit")
	v.MaxBytes = d.u32("max bytes")
	v.Keys = d.keys("keys")
	v.Uploaders = d.refs("uploaders")
	if err := d.finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CloudSubMode says what a CloudSrvSub does to the sender's subscription
// to each key.
type CloudSubMode uint8

// Subscription modes.
const (
	CloudSubRemove CloudSubMode = 0 // the server no longer subscribes
	CloudSubAll    CloudSubMode = 1 // notify changes of every uploader
	CloudSubList   CloudSubMode = 2 // notify changes of the listed uploaders only
)

// CloudSrvSub sets the sending server's subscription to Keys at their
// owner: the union of what its own subscribers asked for. A replica
// ignores keys it does not own.
type CloudSrvSub struct {
	Mode      CloudSubMode
	Keys      []CloudKey
	Uploaders []ClientRef // CloudSubList only; empty otherwise
}

func (m *CloudSrvSub) AppendTo(dst []byte) []byte {
	dst = append(dst, byte(m.Mode))
	dst = appendKeys(dst, m.Keys)
	return appendRefs(dst, m.Uploaders)
}

func (m *CloudSrvSub) Decode(b []byte) error {
	d := decoder{b: b, msg: "cloud server sub"}
	v := CloudSrvSub{Mode: CloudSubMode(d.u8("mode")), Keys: d.keys("keys"), Uploaders: d.refs("uploaders")}
	if d.err == nil {
		switch {
		case v.Mode > CloudSubList:
			d.err = fmt.Errorf("%w: cloud server sub: unknown mode %d", ErrMalformed, v.Mode)
		case v.Mode == CloudSubList && len(v.Uploaders) == 0:
			d.err = fmt.Errorf("%w: cloud server sub: list mode without uploaders", ErrMalformed)
		case v.Mode != CloudSubList && len(v.Uploaders) != 0:
			d.err = fmt.Errorf("%w: cloud server sub: uploaders outside list mode", ErrMalformed)
		}
	}
	if err := d.finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CloudSrvDrop deletes every row of an uploader (it disconnected).
type CloudSrvDrop struct {
	Uploader ClientRef
}

func (m *CloudSrvDrop) AppendTo(dst []byte) []byte { return AppendClientRef(dst, m.Uploader) }

func (m *CloudSrvDrop) Decode(b []byte) error {
	d := decoder{b: b, msg: "cloud server drop"}
	v := CloudSrvDrop{Uploader: d.ref("uploader")}
	if err := d.finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CloudSyncOp is a step of a server's resynchronisation with a replica.
type CloudSyncOp uint8

// Sync operations.
const (
	// CloudSyncStart: every row that came through the sender is now stale
	// until posted again.
	CloudSyncStart CloudSyncOp = 1
	// CloudSyncEnd: delete (and notify) the sender's rows still stale.
	CloudSyncEnd CloudSyncOp = 2
	// CloudSyncBye: the sender is shutting down; delete its rows now.
	CloudSyncBye CloudSyncOp = 3
)

// CloudSrvSync is one sync step.
type CloudSrvSync struct {
	Op CloudSyncOp
}

func (m *CloudSrvSync) AppendTo(dst []byte) []byte { return append(dst, byte(m.Op)) }

func (m *CloudSrvSync) Decode(b []byte) error {
	d := decoder{b: b, msg: "cloud server sync"}
	op := CloudSyncOp(d.u8("op"))
	if d.err == nil && (op < CloudSyncStart || op > CloudSyncBye) {
		d.err = fmt.Errorf("%w: cloud server sync: unknown op %d", ErrMalformed, op)
	}
	if err := d.finish(); err != nil {
		return err
	}
	m.Op = op
	return nil
}

// CloudSrvReply answers a CloudSrvPost or CloudSrvRelease.
type CloudSrvReply struct {
	Req     uint64
	Code    CloudCode
	Message string
}

func (m *CloudSrvReply) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, m.Req)
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Code))
	return appendMsg(dst, m.Message)
}

func (m *CloudSrvReply) Decode(b []byte) error {
	d := decoder{b: b, msg: "cloud server reply"}
	v := CloudSrvReply{Req: d.u64("req"), Code: CloudCode(d.u16("code")), Message: d.str16("message", MaxCloudMessage)}
	if err := d.finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CloudSrvResult answers a CloudSrvGet: Counts[i] is the number of
// matching rows of the request's Keys[i]; Rows are the requested window,
// grouped by key in request order; Cut says MaxBytes stopped the rows
// before the window's end.
type CloudSrvResult struct {
	Req     uint64
	Code    CloudCode
	Message string
	Cut     bool
	Counts  []uint32
	Rows    []CloudRow // Data fields alias the decoded payload
}

func (m *CloudSrvResult) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, m.Req)
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Code))
	dst = appendMsg(dst, m.Message)
	var flags byte
	if m.Cut {
		flags |= srvFlagCut
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Counts)))
	for _, c := range m.Counts {
		dst = binary.BigEndian.AppendUint32(dst, c)
	}
	return appendRows(dst, m.Rows)
}

func (m *CloudSrvResult) Decode(b []byte) error {
	d := decoder{b: b, msg: "cloud server result"}
	v := CloudSrvResult{Req: d.u64("req"), Code: CloudCode(d.u16("code")), Message: d.str16("message", MaxCloudMessage)}
	v.Cut = d.flags(srvFlagCut)&srvFlagCut != 0
	if n := int(d.u16("counts")); d.err == nil && d.check(n, 4, "counts") {
		v.Counts = make([]uint32, n)
		for i := range v.Counts {
			v.Counts[i] = d.u32("count")
		}
	}
	v.Rows = d.rows()
	if err := d.finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CloudSrvMoved tells a server that the sending replica no longer owns
// Keys: the server's rows and subscriptions there were dropped, so it
// places them again with the keys' new owner.
type CloudSrvMoved struct {
	Keys []CloudKey
}

func (m *CloudSrvMoved) AppendTo(dst []byte) []byte { return appendKeys(dst, m.Keys) }

func (m *CloudSrvMoved) Decode(b []byte) error {
	d := decoder{b: b, msg: "cloud server moved"}
	v := CloudSrvMoved{Keys: d.keys("keys")}
	if err := d.finish(); err != nil {
		return err
	}
	*m = v
	return nil
}

// Encoding helpers. Callers validate keys (CloudKey.Validate) and keep
// lists within MaxCloudKeys; the appenders cut what does not fit, which
// the receiver then sees.

func appendKey(dst []byte, k CloudKey) []byte {
	dst = appendStr8(dst, k.Primary)
	return binary.BigEndian.AppendUint32(dst, k.Secondary)
}

func appendKeys(dst []byte, keys []CloudKey) []byte {
	n := min(len(keys), MaxCloudKeys)
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	for _, k := range keys[:n] {
		dst = appendKey(dst, k)
	}
	return dst
}

func appendRefs(dst []byte, refs []ClientRef) []byte {
	n := min(len(refs), MaxCloudKeys)
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	for _, r := range refs[:n] {
		dst = AppendClientRef(dst, r)
	}
	return dst
}

func appendRow(dst []byte, r *CloudRow) []byte {
	dst = appendKey(dst, r.Key)
	dst = AppendClientRef(dst, r.Uploader)
	dst = appendStr8(dst, r.Addr)
	dst = appendStr8(dst, r.Via)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(r.Data)))
	return append(dst, r.Data...)
}

func appendRows(dst []byte, rows []CloudRow) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(rows)))
	for i := range rows {
		dst = appendRow(dst, &rows[i])
	}
	return dst
}

// appendMsg appends a u16-prefixed message, made valid UTF-8 and cut to
// MaxCloudMessage bytes.
func appendMsg(dst []byte, s string) []byte {
	s = truncateUTF8(strings.ToValidUTF8(s, "\uFFFD"), MaxCloudMessage)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// AppendCloudRow appends one encoded row (see the package comment).
func AppendCloudRow(dst []byte, r *CloudRow) []byte { return appendRow(dst, r) }

func (d *decoder) u8(field string) byte {
	if p, ok := d.take(1, field); ok {
		return p[0]
	}
	return 0
}

func (d *decoder) u32(field string) uint32 {
	if p, ok := d.take(4, field); ok {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

// flags reads a flags byte, rejecting bits outside known.
func (d *decoder) flags(known byte) byte {
	f := d.u8("flags")
	if d.err == nil && f&^known != 0 {
		d.err = fmt.Errorf("%w: %s: unknown flags %#x", ErrMalformed, d.msg, f&^known)
		return 0
	}
	return f
}

// rest returns the remaining bytes (aliasing the input).
func (d *decoder) rest() []byte {
	if d.err != nil {
		return nil
	}
	p := d.b[d.off:]
	d.off = len(d.b)
	return p
}

// check reports whether n elements of at least size bytes each can fit in
// what is left, recording an error if not.
func (d *decoder) check(n, size int, field string) bool {
	if d.err != nil {
		return false
	}
	if left := len(d.b) - d.off; n > left/size {
		d.err = fmt.Errorf("%w: %s: %d %s need at least %d bytes, have %d", ErrMalformed, d.msg, n, field, n*size, left)
		return false
	}
	return true
}

func (d *decoder) key() CloudKey {
	return CloudKey{Primary: d.str8("key primary"), Secondary: d.u32("key secondary")}
}

func (d *decoder) ref(field string) ClientRef {
	return ClientRef{Server: d.str8(field + " server"), ID: d.u64(field + " id")}
}

func (d *decoder) keys(field string) []CloudKey {
	n := int(d.u16(field + " count"))
	if n == 0 || !d.check(n, 5, field) {
		return nil
	}
	keys := make([]CloudKey, n)
	for i := range keys {
		keys[i] = d.key()
	}
	return keys
}

func (d *decoder) refs(field string) []ClientRef {
	n := int(d.u16(field + " count"))
	if n == 0 || !d.check(n, 9, field) {
		return nil
	}
	refs := make([]ClientRef, n)
	for i := range refs {
		refs[i] = d.ref(field)
	}
	return refs
}

func (d *decoder) row() CloudRow {
	var r CloudRow
	r.Key = d.key()
	r.Uploader = d.ref("uploader")
	r.Addr = d.str8("addr")
	r.Via = d.str8("via")
	n := d.u32("data length")
	if d.err == nil && uint64(n) > uint64(len(d.b)-d.off) {
		d.err = fmt.Errorf("%w: %s: data of %d bytes, have %d", ErrMalformed, d.msg, n, len(d.b)-d.off)
	}
	if p, ok := d.take(int(n), "data"); ok {
		r.Data = p
	}
	return r
}

func (d *decoder) rows() []CloudRow {
	n := d.u32("row count")
	if n == 0 || !d.check(int(min(n, 1<<31-1)), minRowSize, "rows") {
		return nil
	}
	rows := make([]CloudRow, n)
	for i := range rows {
		rows[i] = d.row()
		if d.err != nil {
			return nil
		}
	}
	return rows
}

// The link kind that carries an extension-kind message to a game client
// held by another server:
//
//	ClientFrame: u64 clientID | u8 kind | payload    (frame tag = the message's tag)

// KindClientFrame routes an extension-kind message to a client the
// receiving external server holds; it answers KindClientGone when the
// client is gone.
const KindClientFrame Kind = 36

// AppendClientFrame appends a ClientFrame payload.
func AppendClientFrame(dst []byte, clientID uint64, kind Kind, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, clientID)
	dst = append(dst, byte(kind))
	return append(dst, payload...)
}

// DecodeClientFrame splits a ClientFrame payload; payload aliases b. The
// kind must be an extension kind.
func DecodeClientFrame(b []byte) (clientID uint64, kind Kind, payload []byte, err error) {
	if len(b) < 9 {
		return 0, 0, nil, fmt.Errorf("%w: client frame: %d bytes, need at least 9", ErrMalformed, len(b))
	}
	kind = Kind(b[8])
	if !IsExtensionKind(kind) {
		return 0, 0, nil, fmt.Errorf("%w: client frame: kind %d is not an extension kind", ErrMalformed, kind)
	}
	return binary.BigEndian.Uint64(b), kind, b[9:], nil
}
