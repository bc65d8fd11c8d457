package protocol_test

// Test vectors of the client protocol (docs/PROTOCOL.md): every message a
// game client sends or receives, as the bytes of one WebSocket message
// (hex) beside a JSON description of its fields, and malformed server
// messages a client must reject. The files in testdata/vectors are written
// by
//
//	go test ./protocol -run TestVectors -update
//
// from the Go encoders; TestVectors checks them both ways (decoding each
// message gives its description, encoding the description gives its
// bytes), and the TypeScript SDK's tests (sdk/typescript/test) check its
// own decoders and encoders against the same files.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors from the Go encoders")

// vectorsDir holds the vector files.
const vectorsDir = "testdata/vectors"

// vectorFile is one file of valid messages.
type vectorFile struct {
	Comment string   `json:"comment"`
	Vectors []vector `json:"vectors"`
}

// vector is one valid message: Hex is the whole WebSocket message (kind,
// tag, payload); Message describes the payload's fields (see the codecs).
type vector struct {
	Name      string          `json:"name"`
	Kind      protocol.Kind   `json:"kind"`
	KindName  string          `json:"kindName"`
	Direction string          `json:"direction"`
	Tag       uint16          `json:"tag"`
	Hex       string          `json:"hex"`
	Message   json.RawMessage `json:"message"`
}

// malformedFile lists server messages a client must reject.
type malformedFile struct {
	Comment string      `json:"comment"`
	Vectors []malformed `json:"vectors"`
}

// malformed is a server message a client must reject by ending the session
// with a protocol error. Phase is "welcome" when the message comes instead
// of the welcome (connecting fails) and "session" when it comes after it.
// Rule says which check catches it: "header" (shorter than the 3-byte
// header), "payload" (the kind's payload does not decode), "kind" (a kind
// a client must not receive: a server-link kind, or one neither known nor
// an extension kind), "welcome" (a welcome that names no client),
// "sequence" (a second welcome).
type malformed struct {
	Name  string `json:"name"`
	Phase string `json:"phase"`
	Rule  string `json:"rule"`
	Hex   string `json:"hex"`
}

const (
	toClient = "server-to-client"
	toServer = "client-to-server"
)

// JSON forms of the shared fields. IDs are decimal strings (they use all 64
// bits); data and payloads are hex.
type (
	jKey struct {
		Primary   string `json:"primary"`
		Secondary uint32 `json:"secondary"`
	}
	jRef struct {
		Server string `json:"server"`
		ID     string `json:"id"`
	}
	jRow struct {
		Key      jKey   `json:"key"`
		Uploader jRef   `json:"uploader"`
		Addr     string `json:"addr"`
		Via      string `json:"via"`
		Data     string `json:"data"`
	}
)

func keyJ(k cloud.Key) jKey { return jKey{k.Primary, k.Secondary} }
func keyG(k jKey) cloud.Key { return cloud.Key{Primary: k.Primary, Secondary: k.Secondary} }

func refJ(r protocol.ClientRef) jRef { return jRef{r.Server, strconv.FormatUint(r.ID, 10)} }
func refG(r jRef) (protocol.ClientRef, error) {
	id, err := strconv.ParseUint(r.ID, 10, 64)
	return protocol.ClientRef{Server: r.Server, ID: id}, err
}

func rowJ(r cloud.Row) jRow {
	return jRow{keyJ(r.Key), refJ(r.Uploader), r.Addr, r.Via, hex.EncodeToString(r.Data)}
}
func rowG(r jRow) (cloud.Row, error) {
	up, err := refG(r.Uploader)
	if err != nil {
		return cloud.Row{}, err
	}
	data, err := hex.DecodeString(r.Data)
	return cloud.Row{Key: keyG(r.Key), Uploader: up, Addr: r.Addr, Via: r.Via, Data: data}, err
}

// mapJ converts a list; nil becomes an empty list, so JSON says [].
func mapJ[T, J any](in []T, f func(T) J) []J {
	out := make([]J, 0, len(in))
	for _, v := range in {
		out = append(out, f(v))
	}
	return out
}

// mapG converts a list back; empty becomes nil, as the decoders return.
func mapG[J, T any](in []J, f func(J) (T, error)) ([]T, error) {
	var out []T
	for _, v := range in {
		t, err := f(v)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func keysJ(ks []cloud.Key) []jKey { return mapJ(ks, keyJ) }
func keysG(ks []jKey) []cloud.Key {
	out, _ := mapG(ks, func(k jKey) (cloud.Key, error) { return keyG(k), nil })
	return out
}
func refsJ(rs []protocol.ClientRef) []jRef { return mapJ(rs, refJ) }
func rowsJ(rs []cloud.Row) []jRow          { return mapJ(rs, rowJ) }

// codec ties a kind's Go value to its payload and its JSON description.
type codec struct {
	direction string
	// describe decodes a payload into its description.
	describe func(payload []byte) (any, error)
	// encode encodes a description's payload.
	encode func(desc json.RawMessage) ([]byte, error)
}

// newCodec builds a codec from a kind's decoder and encoder (dec, enc) and
// the conversions between its value V and its description D.
func newCodec[V, D any](direction string, dec func([]byte) (V, error), enc func(V) []byte, toD func(V) D, fromD func(D) (V, error)) codec {
	return codec{
		direction: direction,
		describe: func(p []byte) (any, error) {
			v, err := dec(p)
			if err != nil {
				return nil, err
			}
			return toD(v), nil
		},
		encode: func(raw json.RawMessage) ([]byte, error) {
			var d D
			dj := json.NewDecoder(bytes.NewReader(raw))
			dj.DisallowUnknownFields()
			if err := dj.Decode(&d); err != nil {
				return nil, err
			}
			v, err := fromD(d)
			if err != nil {
				return nil, err
			}
			return enc(v), nil
		},
	}
}

// decodeWith adapts a Decode method to newCodec's dec.
func decodeWith[V any, P interface {
	*V
	Decode([]byte) error
}](b []byte) (V, error) {
	var v V
	err := P(&v).Decode(b)
	return v, err
}

// appendWith adapts an AppendTo method to newCodec's enc.
func appendWith[V any, P interface {
	*V
	AppendTo([]byte) []byte
}](v V) []byte {
	return P(&v).AppendTo(nil)
}

// Descriptions of each kind's payload.
type (
	jWelcome struct {
		ServerID   string `json:"serverID"`
		ClientID   string `json:"clientID"`
		MaxMessage uint32 `json:"maxMessage"`
	}
	jClose struct {
		Reason     uint16 `json:"reason"`
		ReasonName string `json:"reasonName"`
		Detail     string `json:"detail"`
	}
	jUser struct {
		Payload string `json:"payload"`
	}
	jMove struct {
		Reason     uint16   `json:"reason"`
		ReasonName string   `json:"reasonName"`
		URLs       []string `json:"urls"`
	}
	jPost struct {
		Req  uint32 `json:"req"`
		Key  jKey   `json:"key"`
		Data string `json:"data"`
	}
	jRelease struct {
		Req  uint32 `json:"req"`
		Keys []jKey `json:"keys"`
	}
	jGet struct {
		Req       uint32 `json:"req"`
		Subscribe bool   `json:"subscribe"`
		Offset    uint32 `json:"offset"`
		Limit     uint32 `json:"limit"`
		Keys      []jKey `json:"keys"`
		Uploaders []jRef `json:"uploaders"`
	}
	jUnsubscribe struct {
		Req       uint32 `json:"req"`
		Keys      []jKey `json:"keys"`
		Uploaders []jRef `json:"uploaders"`
	}
	jReply struct {
		Req      uint32 `json:"req"`
		Code     uint16 `json:"code"`
		CodeName string `json:"codeName"`
		Message  string `json:"message"`
	}
	jResult struct {
		Req       uint32 `json:"req"`
		Code      uint16 `json:"code"`
		CodeName  string `json:"codeName"`
		Message   string `json:"message"`
		Truncated bool   `json:"truncated"`
		Partial   bool   `json:"partial"`
		Total     uint32 `json:"total"`
		Missing   []jKey `json:"missing"`
		Rows      []jRow `json:"rows"`
	}
	jNotice struct {
		Type     uint8  `json:"type"`
		TypeName string `json:"typeName"`
		Created  bool   `json:"created"`
		Row      jRow   `json:"row"`
	}
	jResync struct {
		Truncated bool   `json:"truncated"`
		Key       jKey   `json:"key"`
		Rows      []jRow `json:"rows"`
	}
)

// codecs are the kinds a game client sends or receives.
var codecs = map[protocol.Kind]codec{
	protocol.KindClientWelcome: newCodec(toClient, decodeWith[protocol.ClientWelcome], appendWith[protocol.ClientWelcome],
		func(w protocol.ClientWelcome) jWelcome {
			return jWelcome{w.ServerID, strconv.FormatUint(w.ClientID, 10), w.MaxMessage}
		},
		func(d jWelcome) (protocol.ClientWelcome, error) {
			id, err := strconv.ParseUint(d.ClientID, 10, 64)
			return protocol.ClientWelcome{ServerID: d.ServerID, ClientID: id, MaxMessage: d.MaxMessage}, err
		}),
	protocol.KindClose: newCodec(toClient, decodeWith[protocol.Close], appendWith[protocol.Close],
		func(c protocol.Close) jClose { return jClose{uint16(c.Reason), c.Reason.String(), c.Message} },
		func(d jClose) (protocol.Close, error) {
			return protocol.Close{Reason: protocol.Reason(d.Reason), Message: d.Detail}, nil
		}),
	protocol.KindClientMove: newCodec(toClient, decodeWith[protocol.Move], appendWith[protocol.Move],
		func(m protocol.Move) jMove {
			return jMove{uint16(m.Reason), m.Reason.String(), mapJ(m.URLs, func(u string) string { return u })}
		},
		func(d jMove) (protocol.Move, error) {
			urls, _ := mapG(d.URLs, func(u string) (string, error) { return u, nil })
			return protocol.Move{Reason: protocol.Reason(d.Reason), URLs: urls}, nil
		}),
	protocol.KindUser: newCodec("both",
		func(b []byte) ([]byte, error) { return b, nil },
		func(b []byte) []byte { return b },
		func(b []byte) jUser { return jUser{hex.EncodeToString(b)} },
		func(d jUser) ([]byte, error) { return hex.DecodeString(d.Payload) }),
	protocol.KindCloudPost: newCodec(toServer, decodeWith[cloudwire.Post], appendWith[cloudwire.Post],
		func(m cloudwire.Post) jPost { return jPost{m.Req, keyJ(m.Key), hex.EncodeToString(m.Data)} },
		func(d jPost) (cloudwire.Post, error) {
			data, err := hex.DecodeString(d.Data)
			return cloudwire.Post{Req: d.Req, Key: keyG(d.Key), Data: data}, err
		}),
	protocol.KindCloudRelease: newCodec(toServer, decodeWith[cloudwire.Release], appendWith[cloudwire.Release],
		func(m cloudwire.Release) jRelease { return jRelease{m.Req, keysJ(m.Keys)} },
		func(d jRelease) (cloudwire.Release, error) {
			return cloudwire.Release{Req: d.Req, Keys: keysG(d.Keys)}, nil
		}),
	protocol.KindCloudGet: newCodec(toServer, decodeWith[cloudwire.Get], appendWith[cloudwire.Get],
		func(m cloudwire.Get) jGet {
			q := m.Query
			return jGet{m.Req, q.Subscribe, q.Offset, q.Limit, keysJ(q.Keys), refsJ(q.Uploaders)}
		},
		func(d jGet) (cloudwire.Get, error) {
			ups, err := mapG(d.Uploaders, refG)
			q := cloud.Query{Keys: keysG(d.Keys), Uploaders: ups, Offset: d.Offset, Limit: d.Limit, Subscribe: d.Subscribe}
			return cloudwire.Get{Req: d.Req, Query: q}, err
		}),
	protocol.KindCloudUnsubscribe: newCodec(toServer, decodeWith[cloudwire.Unsubscribe], appendWith[cloudwire.Unsubscribe],
		func(m cloudwire.Unsubscribe) jUnsubscribe {
			return jUnsubscribe{m.Req, keysJ(m.Keys), refsJ(m.Uploaders)}
		},
		func(d jUnsubscribe) (cloudwire.Unsubscribe, error) {
			ups, err := mapG(d.Uploaders, refG)
			return cloudwire.Unsubscribe{Req: d.Req, Keys: keysG(d.Keys), Uploaders: ups}, err
		}),
	protocol.KindCloudReply: newCodec(toClient, decodeWith[cloudwire.Reply], appendWith[cloudwire.Reply],
		func(m cloudwire.Reply) jReply { return jReply{m.Req, uint16(m.Code), m.Code.String(), m.Message} },
		func(d jReply) (cloudwire.Reply, error) {
			return cloudwire.Reply{Req: d.Req, Code: cloud.Code(d.Code), Message: d.Message}, nil
		}),
	protocol.KindCloudResult: newCodec(toClient, decodeWith[cloudwire.Result], appendWith[cloudwire.Result],
		func(m cloudwire.Result) jResult {
			return jResult{m.Req, uint16(m.Code), m.Code.String(), m.Message, m.Truncated, m.Partial, m.Total, keysJ(m.Missing), rowsJ(m.Rows)}
		},
		func(d jResult) (cloudwire.Result, error) {
			rows, err := mapG(d.Rows, rowG)
			return cloudwire.Result{Req: d.Req, Code: cloud.Code(d.Code), Message: d.Message, Total: d.Total,
				Truncated: d.Truncated, Partial: d.Partial, Missing: keysG(d.Missing), Rows: rows}, err
		}),
	protocol.KindCloudNotify: newCodec(toClient, decodeWith[cloudwire.Notice], appendWith[cloudwire.Notice],
		func(m cloudwire.Notice) jNotice {
			return jNotice{uint8(m.Type), m.Type.String(), m.Created, rowJ(m.Row)}
		},
		func(d jNotice) (cloudwire.Notice, error) {
			row, err := rowG(d.Row)
			return cloudwire.Notice{Type: cloudwire.NoticeType(d.Type), Created: d.Created, Row: row}, err
		}),
	protocol.KindCloudResync: newCodec(toClient, decodeWith[cloudwire.Resync], appendWith[cloudwire.Resync],
		func(m cloudwire.Resync) jResync { return jResync{m.Truncated, keyJ(m.Key), rowsJ(m.Rows)} },
		func(d jResync) (cloudwire.Resync, error) {
			rows, err := mapG(d.Rows, rowG)
			return cloudwire.Resync{Truncated: d.Truncated, Key: keyG(d.Key), Rows: rows}, err
		}),
}

// clientKnows reports whether a client accepts a message of kind from a
// server: the kinds above sent to clients, and the extension kinds (a game
// plugin's own protocols).
func clientKnows(k protocol.Kind) bool {
	if c, ok := codecs[k]; ok {
		return c.direction != toServer
	}
	return protocol.IsExtensionKind(k)
}

func TestVectors(t *testing.T) {
	files := generate(t)
	if *update {
		if err := os.MkdirAll(vectorsDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, v := range files {
			b, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(vectorsDir, name), append(b, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, want := range files {
		b, err := os.ReadFile(filepath.Join(vectorsDir, name))
		if err != nil {
			t.Fatalf("%v (go test ./protocol -run TestVectors -update writes it)", err)
		}
		wantJSON, err := json.MarshalIndent(want, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bytes.TrimSpace(b), wantJSON) {
			t.Errorf("%s differs from what the encoders give now: run go test ./protocol -run TestVectors -update, and review the change", name)
		}
		switch v := want.(type) {
		case vectorFile:
			var got vectorFile
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, vec := range got.Vectors {
				checkVector(t, name, vec)
			}
		case malformedFile:
			var got malformedFile
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, m := range got.Vectors {
				checkMalformed(t, m)
			}
		default:
			t.Fatalf("%s: %T", name, v)
		}
	}
}

// checkVector checks one valid message both ways.
func checkVector(t *testing.T, file string, v vector) {
	t.Helper()
	where := file + ": " + v.Name
	msg, err := hex.DecodeString(v.Hex)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	c, ok := codecs[v.Kind]
	if !ok || c.direction != v.Direction || v.KindName != protocol.ClientKindString(v.Kind) {
		t.Fatalf("%s: kind %d %q %s is not a client kind", where, v.Kind, v.KindName, v.Direction)
	}
	f, err := protocol.DecodeWS(msg)
	if err != nil || f.Kind != v.Kind || f.Tag != v.Tag {
		t.Fatalf("%s: header %+v, %v", where, f, err)
	}
	desc, err := c.describe(f.Payload)
	if err != nil {
		t.Fatalf("%s: decode: %v", where, err)
	}
	var got, want any
	b, _ := json.Marshal(desc)
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(v.Message, &want); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: decodes to\n%s\nwant\n%s", where, b, v.Message)
	}
	payload, err := c.encode(v.Message)
	if err != nil {
		t.Fatalf("%s: encode: %v", where, err)
	}
	if enc := protocol.AppendWS(nil, v.Kind, v.Tag, payload); !bytes.Equal(enc, msg) {
		t.Errorf("%s: encodes to %x, want %s", where, enc, v.Hex)
	}
}

// checkMalformed checks that the Go decoders reject what the vector says.
func checkMalformed(t *testing.T, m malformed) {
	t.Helper()
	msg, err := hex.DecodeString(m.Hex)
	if err != nil {
		t.Fatalf("%s: %v", m.Name, err)
	}
	if m.Phase != "welcome" && m.Phase != "session" {
		t.Fatalf("%s: unknown phase %q", m.Name, m.Phase)
	}
	f, err := protocol.DecodeWS(msg)
	if m.Rule == "header" {
		if !errors.Is(err, protocol.ErrShortFrame) {
			t.Errorf("%s: DecodeWS gave %v, want ErrShortFrame", m.Name, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", m.Name, err)
	}
	c, known := codecs[f.Kind]
	switch m.Rule {
	case "payload":
		if !known {
			t.Fatalf("%s: kind %d has no decoder", m.Name, f.Kind)
		}
		if _, err := c.describe(f.Payload); !errors.Is(err, protocol.ErrMalformed) {
			t.Errorf("%s: decoding gave %v, want ErrMalformed", m.Name, err)
		}
	case "kind":
		if clientKnows(f.Kind) {
			t.Errorf("%s: a client accepts kind %d", m.Name, f.Kind)
		}
	case "welcome", "sequence":
		var w protocol.ClientWelcome
		err := w.Decode(f.Payload)
		if f.Kind != protocol.KindClientWelcome || err != nil {
			t.Fatalf("%s: not a welcome: %v", m.Name, err)
		}
		if noClient := w.ServerID == "" || w.ClientID == 0; noClient != (m.Rule == "welcome") {
			t.Errorf("%s: welcome %+v", m.Name, w)
		}
	default:
		t.Fatalf("%s: unknown rule %q", m.Name, m.Rule)
	}
}

// builder collects the vectors of one file.
type builder struct {
	t    *testing.T
	file vectorFile
}

// add encodes value (a payload's Go value) and describes it.
func (b *builder) add(name string, kind protocol.Kind, tag uint16, payload []byte) {
	c := codecs[kind]
	desc, err := c.describe(payload)
	if err != nil {
		b.t.Fatalf("vector %s: %v", name, err)
	}
	raw, err := json.Marshal(desc)
	if err != nil {
		b.t.Fatal(err)
	}
	b.file.Vectors = append(b.file.Vectors, vector{
		Name: name, Kind: kind, KindName: protocol.ClientKindString(kind), Direction: c.direction, Tag: tag,
		Hex: hex.EncodeToString(protocol.AppendWS(nil, kind, tag, payload)), Message: raw,
	})
}

// generate builds every file of testdata/vectors from the Go encoders.
func generate(t *testing.T) map[string]any {
	const generated = "Generated by go test ./protocol -run TestVectors -update from the Go encoders; do not edit. Format: protocol/testdata/vectors/README.md."
	session := &builder{t: t, file: vectorFile{Comment: generated}}
	session.add("welcome", protocol.KindClientWelcome, 0, (&protocol.ClientWelcome{ServerID: "client-1", ClientID: 0x8f3a2c1b00000007, MaxMessage: 1024}).AppendTo(nil))
	session.add("welcome without a limit", protocol.KindClientWelcome, 0, (&protocol.ClientWelcome{ServerID: "é-server", ClientID: 1<<64 - 1}).AppendTo(nil))
	session.add("user message", protocol.KindUser, 513, []byte{0, 1, 2, 0xfe, 0xff})
	session.add("empty user message", protocol.KindUser, 65535, nil)
	for r := protocol.Reason(0); r <= protocol.ReasonDraining; r++ {
		detail := ""
		if r == protocol.ReasonKicked || r == protocol.ReasonAuthRefused {
			detail = "bye, wörld"
		}
		session.add("close: "+r.String(), protocol.KindClose, 0, (&protocol.Close{Reason: r, Message: detail}).AppendTo(nil))
	}
	session.add("move", protocol.KindClientMove, 0, (&protocol.Move{Reason: protocol.ReasonDraining,
		URLs: []string{"ws://10.0.0.2:7000/play", "wss://eu.example.com/play?x=ü"}}).AppendTo(nil))
	session.add("move with no URL", protocol.KindClientMove, 0, (&protocol.Move{Reason: protocol.ReasonDraining}).AppendTo(nil))
	session.add("close of an unnamed reason", protocol.KindClose, 0, (&protocol.Close{Reason: 300}).AppendTo(nil))
	session.add("close with the longest detail", protocol.KindClose, 0, (&protocol.Close{Reason: protocol.ReasonKicked, Message: strings.Repeat("x", protocol.MaxCloseMessage)}).AppendTo(nil))

	room := cloud.Key{Primary: "room", Secondary: 7}
	lobby := cloud.Key{Primary: "lobby", Secondary: 0xffffffff}
	alice := protocol.ClientRef{Server: "client-1", ID: 0x8f3a2c1b00000007}
	srv := protocol.ClientRef{Server: "world-2"}
	rowA := cloud.Row{Key: room, Uploader: alice, Addr: "203.0.113.9:51234", Via: "client-1", Data: []byte("hi")}
	rowS := cloud.Row{Key: lobby, Uploader: srv, Via: "world-2"}

	requests := &builder{t: t, file: vectorFile{Comment: generated}}
	requests.add("post", protocol.KindCloudPost, 0, (&cloudwire.Post{Req: 1, Key: room, Data: []byte("hi")}).AppendTo(nil))
	requests.add("post of no data", protocol.KindCloudPost, 0, (&cloudwire.Post{Req: 0xffffffff, Key: cloud.Key{Primary: ""}}).AppendTo(nil))
	requests.add("release", protocol.KindCloudRelease, 0, (&cloudwire.Release{Req: 2, Keys: []cloud.Key{room, lobby}}).AppendTo(nil))
	requests.add("get", protocol.KindCloudGet, 0, (&cloudwire.Get{Req: 3, Query: cloud.Query{Keys: []cloud.Key{room}}}).AppendTo(nil))
	requests.add("get subscribe filtered", protocol.KindCloudGet, 0, (&cloudwire.Get{Req: 4, Query: cloud.Query{
		Keys: []cloud.Key{room, lobby}, Uploaders: []protocol.ClientRef{alice, srv}, Offset: 10, Limit: 20, Subscribe: true}}).AppendTo(nil))
	requests.add("unsubscribe", protocol.KindCloudUnsubscribe, 0, (&cloudwire.Unsubscribe{Req: 5, Keys: []cloud.Key{room}}).AppendTo(nil))
	requests.add("unsubscribe uploaders", protocol.KindCloudUnsubscribe, 0, (&cloudwire.Unsubscribe{Req: 6, Keys: []cloud.Key{lobby}, Uploaders: []protocol.ClientRef{alice}}).AppendTo(nil))

	answers := &builder{t: t, file: vectorFile{Comment: generated}}
	for c := cloud.CodeOK; c <= cloud.CodeRateLimited; c++ {
		msg := ""
		if c != cloud.CodeOK {
			msg = "because: " + c.String()
		}
		answers.add("reply: "+c.String(), protocol.KindCloudReply, 0, (&cloudwire.Reply{Req: uint32(c) + 1, Code: c, Message: msg}).AppendTo(nil))
	}
	answers.add("reply of an unnamed code", protocol.KindCloudReply, 0, (&cloudwire.Reply{Req: 99, Code: 400}).AppendTo(nil))
	answers.add("result", protocol.KindCloudResult, 0, (&cloudwire.Result{Req: 3, Total: 2, Rows: []cloud.Row{rowA, rowS}}).AppendTo(nil))
	answers.add("result empty", protocol.KindCloudResult, 0, (&cloudwire.Result{Req: 4}).AppendTo(nil))
	answers.add("result truncated and partial", protocol.KindCloudResult, 0, (&cloudwire.Result{Req: 5, Total: 9, Truncated: true, Partial: true,
		Missing: []cloud.Key{lobby}, Rows: []cloud.Row{rowA}}).AppendTo(nil))
	answers.add("result: too many keys", protocol.KindCloudResult, 0, (&cloudwire.Result{Req: 6, Code: cloud.CodeTooManyKeys, Message: "65 keys, at most 64"}).AppendTo(nil))

	notices := &builder{t: t, file: vectorFile{Comment: generated}}
	notices.add("updated", protocol.KindCloudNotify, 0, (&cloudwire.Notice{Type: cloudwire.Updated, Row: rowA}).AppendTo(nil))
	notices.add("updated created", protocol.KindCloudNotify, 0, (&cloudwire.Notice{Type: cloudwire.Updated, Created: true, Row: rowS}).AppendTo(nil))
	notices.add("deleted", protocol.KindCloudNotify, 0, (&cloudwire.Notice{Type: cloudwire.Deleted, Row: rowA}).AppendTo(nil))
	notices.add("resync", protocol.KindCloudResync, 0, (&cloudwire.Resync{Key: room, Rows: []cloud.Row{rowA}}).AppendTo(nil))
	notices.add("resync empty truncated", protocol.KindCloudResync, 0, (&cloudwire.Resync{Truncated: true, Key: lobby}).AppendTo(nil))

	return map[string]any{
		"session.json":        session.file,
		"cloud-requests.json": requests.file,
		"cloud-answers.json":  answers.file,
		"cloud-notices.json":  notices.file,
		"malformed.json":      malformedFile{Comment: generated, Vectors: malformedVectors(rowA)},
	}
}

// malformedVectors are server messages a client must reject.
func malformedVectors(row cloud.Row) []malformed {
	var out []malformed
	add := func(name, phase, rule string, msg []byte) {
		out = append(out, malformed{Name: name, Phase: phase, Rule: rule, Hex: hex.EncodeToString(msg)})
	}
	ws := func(kind protocol.Kind, payload []byte) []byte { return protocol.AppendWS(nil, kind, 0, payload) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	welcome := (&protocol.ClientWelcome{ServerID: "client-1", ClientID: 7, MaxMessage: 1024}).AppendTo(nil)
	rowB := cloudwire.AppendRow(nil, &row)
	reply := (&cloudwire.Reply{Req: 1, Code: cloud.CodeRejected, Message: "no"}).AppendTo(nil)
	result := (&cloudwire.Result{Req: 1, Total: 1, Rows: []cloud.Row{row}}).AppendTo(nil)
	notice := (&cloudwire.Notice{Type: cloudwire.Updated, Row: row}).AppendTo(nil)
	resync := (&cloudwire.Resync{Key: row.Key, Rows: []cloud.Row{row}}).AppendTo(nil)
	closeB := (&protocol.Close{Reason: protocol.ReasonKicked, Message: "bye"}).AppendTo(nil)
	long := strings.Repeat("x", 1025)

	add("welcome: truncated", "welcome", "payload", ws(protocol.KindClientWelcome, welcome[:len(welcome)-1]))
	add("welcome: trailing byte", "welcome", "payload", ws(protocol.KindClientWelcome, cat(welcome, []byte{0})))
	add("welcome: server ID longer than the message", "welcome", "payload", ws(protocol.KindClientWelcome, cat([]byte{40}, welcome[1:])))
	add("welcome: no server ID", "welcome", "welcome", ws(protocol.KindClientWelcome, (&protocol.ClientWelcome{ClientID: 7}).AppendTo(nil)))
	add("welcome: client ID 0", "welcome", "welcome", ws(protocol.KindClientWelcome, (&protocol.ClientWelcome{ServerID: "client-1"}).AppendTo(nil)))
	add("welcome: short header", "welcome", "header", []byte{32, 0})

	add("empty message", "session", "header", nil)
	add("header of 2 bytes", "session", "header", []byte{16, 0})
	add("second welcome", "session", "sequence", ws(protocol.KindClientWelcome, welcome))
	for _, k := range []protocol.Kind{0, protocol.KindHello, protocol.KindPing, protocol.KindLeaving, 9, 17, 31,
		protocol.KindClientMulti, protocol.KindClientFrame, 37, 63, 96, 200, 255} {
		add(fmt.Sprintf("kind %d (%s)", k, protocol.ClientKindString(k)), "session", "kind", ws(k, []byte{1, 2, 3}))
	}
	add("close: truncated reason", "session", "payload", ws(protocol.KindClose, []byte{0}))
	add("close: detail longer than the message", "session", "payload", ws(protocol.KindClose, cat(closeB[:2], []byte{0, 9}, []byte("bye"))))
	add("close: detail over 1024 bytes", "session", "payload", ws(protocol.KindClose, cat([]byte{0, 22, 4, 1}, []byte(long))))
	add("close: detail not UTF-8", "session", "payload", ws(protocol.KindClose, []byte{0, 22, 0, 2, 0xc3, 0x28}))
	add("close: trailing byte", "session", "payload", ws(protocol.KindClose, cat(closeB, []byte{0})))
	move := (&protocol.Move{Reason: protocol.ReasonDraining, URLs: []string{"ws://a:1/"}}).AppendTo(nil)
	add("move: truncated", "session", "payload", ws(protocol.KindClientMove, move[:len(move)-1]))
	add("move: trailing byte", "session", "payload", ws(protocol.KindClientMove, cat(move, []byte{0})))
	add("move: 255 URLs in no bytes", "session", "payload", ws(protocol.KindClientMove, []byte{0, 25, 255}))
	add("move: URL not UTF-8", "session", "payload", ws(protocol.KindClientMove, []byte{0, 25, 1, 0, 1, 0xff}))
	add("move: no count", "session", "payload", ws(protocol.KindClientMove, []byte{0, 25}))
	add("reply: truncated", "session", "payload", ws(protocol.KindCloudReply, reply[:len(reply)-1]))
	add("reply: trailing byte", "session", "payload", ws(protocol.KindCloudReply, cat(reply, []byte{0})))
	add("reply: message over 1024 bytes", "session", "payload", ws(protocol.KindCloudReply, cat([]byte{0, 0, 0, 1, 0, 4, 4, 1}, []byte(long))))
	add("reply: message not UTF-8", "session", "payload", ws(protocol.KindCloudReply, []byte{0, 0, 0, 1, 0, 4, 0, 1, 0xff}))
	add("result: truncated", "session", "payload", ws(protocol.KindCloudResult, result[:len(result)-1]))
	add("result: trailing byte", "session", "payload", ws(protocol.KindCloudResult, cat(result, []byte{0})))
	add("result: unknown flag", "session", "payload", ws(protocol.KindCloudResult, []byte{0, 0, 0, 1, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}))
	add("result: 65535 missing keys in no bytes", "session", "payload", ws(protocol.KindCloudResult, []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0}))
	add("result: 2^32-1 rows in no bytes", "session", "payload", ws(protocol.KindCloudResult, []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}))
	add("notice: type 0", "session", "payload", ws(protocol.KindCloudNotify, cat([]byte{0, 0}, rowB)))
	add("notice: type 3", "session", "payload", ws(protocol.KindCloudNotify, cat([]byte{3, 0}, rowB)))
	add("notice: created on a deletion", "session", "payload", ws(protocol.KindCloudNotify, cat([]byte{2, 1}, rowB)))
	add("notice: unknown flag", "session", "payload", ws(protocol.KindCloudNotify, cat([]byte{1, 2}, rowB)))
	add("notice: truncated row", "session", "payload", ws(protocol.KindCloudNotify, notice[:len(notice)-1]))
	add("notice: trailing byte", "session", "payload", ws(protocol.KindCloudNotify, cat(notice, []byte{0})))
	dataLen := len(rowB) - len(row.Data) - 4
	bad := cat(notice[:2+dataLen], []byte{0, 0, 1, 0}, row.Data)
	add("notice: data length past the end", "session", "payload", ws(protocol.KindCloudNotify, bad))
	add("resync: unknown flag", "session", "payload", ws(protocol.KindCloudResync, cat([]byte{2}, resync[1:])))
	add("resync: more rows than sent", "session", "payload", ws(protocol.KindCloudResync, cat(resync[:1+len(row.Key.Primary)+5], []byte{0, 0, 0, 2}, rowB)))
	add("resync: trailing byte", "session", "payload", ws(protocol.KindCloudResync, cat(resync, []byte{0})))
	add("resync: key primary not UTF-8", "session", "payload", ws(protocol.KindCloudResync, []byte{0, 1, 0xff, 0, 0, 0, 0, 0, 0, 0, 0}))
	return out
}
