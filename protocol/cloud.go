package protocol

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"strings"
)

// Cloud-memory frame kinds. Kinds 64–95 are extension kinds: the runtime
// hands them to the plugin that claims them (the cloud memory claims the
// ones below). Their payloads are package protocol/cloudwire's messages,
// named after the kinds (KindCloudPost carries a cloudwire.Post,
// KindCloudSrvGet a cloudwire.SrvGet, ...):
//
//   - kinds 64–71 travel between a game client and its external server;
//   - kinds 80–91 travel between a server and a cloud-memory replica.

// Extension kinds: frames of these kinds are handed to the plugin that
// claims them (extension.FrameHandler); a server closes a connection that
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
	KindCloudPost        Kind = 64 // client → server: cloudwire.Post
	KindCloudRelease     Kind = 65 // client → server: cloudwire.Release
	KindCloudGet         Kind = 66 // client → server: cloudwire.Get
	KindCloudUnsubscribe Kind = 67 // client → server: cloudwire.Unsubscribe
	KindCloudReply       Kind = 68 // server → client: cloudwire.Reply to Post, Release, Unsubscribe
	KindCloudResult      Kind = 69 // server → client: cloudwire.Result to Get
	KindCloudNotify      Kind = 70 // server → client: cloudwire.Notice
	KindCloudResync      Kind = 71 // server → client: cloudwire.Resync

	// Server ↔ cloud-memory replica.
	KindCloudSrvPost    Kind = 80 // server → replica: cloudwire.SrvPost
	KindCloudSrvRelease Kind = 81 // server → replica: cloudwire.SrvRelease
	KindCloudSrvGet     Kind = 82 // server → replica: cloudwire.SrvGet
	KindCloudSrvSub     Kind = 83 // server → replica: cloudwire.SrvSub
	KindCloudSrvDrop    Kind = 84 // server → replica: cloudwire.SrvDrop
	KindCloudSrvSync    Kind = 85 // server → replica: cloudwire.SrvSync
	KindCloudSrvReply   Kind = 88 // replica → server: cloudwire.SrvReply to Post, Release
	KindCloudSrvResult  Kind = 89 // replica → server: cloudwire.SrvResult to Get
	KindCloudSrvNotify  Kind = 90 // replica → server: cloudwire.Notice
	KindCloudSrvMoved   Kind = 91 // replica → server: cloudwire.SrvMoved
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

// CompareRefs orders ClientRefs by server, then ID: the uploader order of
// cloud-memory results.
func CompareRefs(a, b ClientRef) int {
	if c := strings.Compare(a.Server, b.Server); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
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
