package protocol

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func testRows() []CloudRow {
	return []CloudRow{
		{Key: CloudKey{"app", 1}, Uploader: ClientRef{Server: "client-1", ID: 7}, Addr: "127.0.0.1:5000", Via: "client-1", Data: []byte("sixteen")},
		{Key: CloudKey{"app", 2}, Uploader: ClientRef{Server: "world-1"}, Via: "world-1", Data: []byte{}},
		{Key: CloudKey{"é", 1 << 31}, Uploader: ClientRef{Server: "c", ID: 1 << 60}, Addr: "[::1]:1", Via: "c", Data: bytes.Repeat([]byte{9}, 300)},
	}
}

// cloudSamples returns one filled value of every cloud payload type.
func cloudSamples() []codec {
	rows := testRows()
	keys := []CloudKey{{"a", 0}, {"bb", 7}, {strings.Repeat("k", MaxCloudPrimary), 1}}
	refs := []ClientRef{{Server: "s1", ID: 1}, {Server: "s2"}}
	return []codec{
		&CloudPost{Req: 1, Key: keys[1], Data: []byte("data")},
		&CloudPost{Req: 2, Key: keys[0]},
		&CloudRelease{Req: 3, Keys: keys},
		&CloudGet{Req: 4, Query: CloudQuery{Keys: keys, Uploaders: refs, Offset: 5, Limit: 6, Subscribe: true}},
		&CloudGet{Req: 4, Query: CloudQuery{Keys: keys[:1]}},
		&CloudUnsubscribe{Req: 7, Keys: keys, Uploaders: refs},
		&CloudReply{Req: 8, Code: CloudUploadLimit, Message: "over the limit"},
		&CloudResult{Req: 9, Code: CloudOK, Total: 10, Truncated: true, Partial: true, Missing: keys[:1], Rows: rows},
		&CloudResult{Req: 9, Code: CloudRejected, Message: "no"},
		&CloudNotice{Type: CloudUpdated, Created: true, Row: rows[0]},
		&CloudNotice{Type: CloudDeleted, Row: rows[2]},
		&CloudResync{Truncated: true, Key: keys[1], Rows: rows},
		&CloudResync{Key: keys[1]},
		&CloudSrvPost{Req: 1 << 40, Sync: true, Key: keys[2], Uploader: refs[0], Addr: "1.2.3.4:5", Data: []byte("x")},
		&CloudSrvRelease{Req: 11, Uploader: refs[1], Addr: "10.0.0.1:9", Keys: keys},
		&CloudSrvGet{Req: 12, Sync: true, CountOnly: true, Asker: refs[0], Addr: "a", Offset: 1, Limit: 2, MaxBytes: 3, Keys: keys, Uploaders: refs},
		&CloudSrvSub{Mode: CloudSubList, Keys: keys, Uploaders: refs},
		&CloudSrvSub{Mode: CloudSubAll, Keys: keys},
		&CloudSrvSub{Mode: CloudSubRemove, Keys: keys},
		&CloudSrvDrop{Uploader: refs[0]},
		&CloudSrvSync{Op: CloudSyncEnd},
		&CloudSrvReply{Req: 13, Code: CloudNotOwner, Message: "ask another"},
		&CloudSrvResult{Req: 14, Cut: true, Counts: []uint32{3, 0, 1 << 31}, Rows: rows},
		&CloudSrvResult{Req: 14, Code: CloudNotOwner},
		&CloudSrvMoved{Keys: keys},
	}
}

// fresh returns a new zero value of v's type.
func fresh(v codec) codec { return reflect.New(reflect.TypeOf(v).Elem()).Interface().(codec) }

// normalize makes empty slices nil so decoded values compare with
// reflect.DeepEqual.
func normalize(v codec) codec {
	b := v.AppendTo(nil)
	w := fresh(v)
	if err := w.Decode(b); err != nil {
		panic(err)
	}
	return w
}

func TestCloudRoundTrip(t *testing.T) {
	for _, v := range cloudSamples() {
		b := v.AppendTo(nil)
		w := fresh(v)
		if err := w.Decode(b); err != nil {
			t.Fatalf("%T: decode: %v", v, err)
		}
		if !bytes.Equal(w.AppendTo(nil), b) {
			t.Fatalf("%T: re-encoding differs", v)
		}
		if got, want := w, normalize(v); !reflect.DeepEqual(got, want) {
			t.Fatalf("%T: got %+v, want %+v", v, got, want)
		}
		// Every field counts: the value must survive as given.
		switch m := v.(type) {
		case *CloudResult:
			if m.Rows != nil && !reflect.DeepEqual(w.(*CloudResult).Rows[2].Data, m.Rows[2].Data) {
				t.Fatal("row data lost")
			}
		case *CloudGet:
			if w.(*CloudGet).Query.Subscribe != m.Query.Subscribe || w.(*CloudGet).Query.Limit != m.Query.Limit {
				t.Fatal("query fields lost")
			}
		}
	}
}

func TestCloudRejectsTruncationAndTrailing(t *testing.T) {
	for _, v := range cloudSamples() {
		b := v.AppendTo(nil)
		// Post payloads end with their data: every prefix past the header
		// is a valid shorter post, so only the header is checked.
		min := 0
		switch v.(type) {
		case *CloudPost:
			min = len(b) - len(v.(*CloudPost).Data)
		case *CloudSrvPost:
			min = len(b) - len(v.(*CloudSrvPost).Data)
		}
		for n := 0; n < len(b); n++ {
			if n >= min && min > 0 {
				break
			}
			if err := fresh(v).Decode(b[:n]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%T: prefix %d of %d: %v", v, n, len(b), err)
			}
		}
		if min > 0 {
			continue
		}
		if err := fresh(v).Decode(append(b, 0)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%T: trailing byte: %v", v, err)
		}
	}
}

func TestCloudRejectsInvalid(t *testing.T) {
	cases := []struct {
		name string
		v    codec
		b    []byte
	}{
		{"unknown get flag", &CloudGet{}, []byte{0, 0, 0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"notice type 0", &CloudNotice{}, append([]byte{0, 0}, appendRow(nil, &testRows()[0])...)},
		{"deleted and created", &CloudNotice{}, append([]byte{byte(CloudDeleted), 1}, appendRow(nil, &testRows()[0])...)},
		{"sub list without uploaders", &CloudSrvSub{}, []byte{byte(CloudSubList), 0, 0, 0, 0}},
		{"sub all with uploaders", &CloudSrvSub{}, appendRefs([]byte{byte(CloudSubAll), 0, 0}, []ClientRef{{Server: "s"}})},
		{"sub mode 3", &CloudSrvSub{}, []byte{3, 0, 0, 0, 0}},
		{"sync op 0", &CloudSrvSync{}, []byte{0}},
		{"invalid UTF-8 key", &CloudRelease{}, []byte{0, 0, 0, 1, 0, 1, 1, 0xff, 0, 0, 0, 0}},
		// Counts that promise more than the bytes hold fail before
		// allocating for them.
		{"huge key count", &CloudRelease{}, []byte{0, 0, 0, 1, 0xff, 0xff, 0}},
		{"huge row count", &CloudResync{}, append(appendKey([]byte{0}, CloudKey{"k", 1}), 0xff, 0xff, 0xff, 0xff)},
		{"huge data length", &CloudNotice{}, append(append([]byte{1, 0}, appendKey(nil, CloudKey{"k", 1})...), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff)},
		{"huge counts", &CloudSrvResult{}, append((&CloudSrvReply{Req: 1}).AppendTo(nil), 0, 0xff, 0xff)},
		{"long message", &CloudReply{}, append([]byte{0, 0, 0, 1, 0, 0, 0x04, 0x01}, make([]byte, 1025)...)},
	}
	for _, c := range cases {
		if err := c.v.Decode(c.b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestCloudAppendCutsMessage(t *testing.T) {
	r := CloudReply{Req: 1, Message: strings.Repeat("€", 1000) + "\xff"}
	var got CloudReply
	if err := got.Decode(r.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	if len(got.Message) > MaxCloudMessage || !strings.HasPrefix(r.Message, got.Message) {
		t.Fatalf("message of %d bytes", len(got.Message))
	}
}

func TestCloudKeyValidate(t *testing.T) {
	if err := (CloudKey{Primary: strings.Repeat("x", MaxCloudPrimary)}).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (CloudKey{Primary: strings.Repeat("x", MaxCloudPrimary+1)}).Validate(); err == nil {
		t.Fatal("long primary accepted")
	}
	if err := (CloudKey{Primary: "\xff"}).Validate(); err == nil {
		t.Fatal("invalid UTF-8 accepted")
	}
}

func TestCloudRowEncodedSize(t *testing.T) {
	for _, r := range testRows() {
		if got, want := r.EncodedSize(), len(appendRow(nil, &r)); got != want {
			t.Fatalf("EncodedSize %d, encoded %d", got, want)
		}
	}
}

func TestCompareRefs(t *testing.T) {
	refs := []ClientRef{{"a", 2}, {"a", 10}, {"b", 1}, {"b", 1}}
	for i := 0; i+1 < len(refs); i++ {
		if CompareRefs(refs[i], refs[i+1]) > 0 {
			t.Fatalf("%v > %v", refs[i], refs[i+1])
		}
	}
	if CompareRefs(refs[1], refs[0]) <= 0 || CompareRefs(refs[2], refs[3]) != 0 {
		t.Fatal("order")
	}
}

func TestClientFrame(t *testing.T) {
	id, k, p, err := DecodeClientFrame(AppendClientFrame(nil, 42, KindCloudNotify, []byte("n")))
	if err != nil || id != 42 || k != KindCloudNotify || string(p) != "n" {
		t.Fatalf("%d %v %q %v", id, k, p, err)
	}
	if _, _, _, err := DecodeClientFrame(AppendClientFrame(nil, 1, KindUser, nil)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("user kind accepted: %v", err)
	}
	if _, _, _, err := DecodeClientFrame([]byte{1, 2}); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
	if KindClientFrame.String() != "client-frame" || KindCloudSrvMoved.String() != "cloud-srv-moved" || Kind(95).String() != "kind(95)" {
		t.Fatal("kind names")
	}
	if !IsExtensionKind(64) || !IsExtensionKind(95) || IsExtensionKind(63) || IsExtensionKind(96) {
		t.Fatal("extension range")
	}
}

// fuzzCloud checks one decoder on arbitrary input: no panic, errors wrap
// ErrMalformed, and a decoded value re-encodes to exactly the input.
func fuzzCloud(t *testing.T, v codec, data []byte) {
	if err := v.Decode(data); err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("%T: error %v does not wrap ErrMalformed", v, err)
		}
		return
	}
	if enc := v.AppendTo(nil); !bytes.Equal(enc, data) {
		t.Fatalf("%T: re-encoded %x, input %x", v, enc, data)
	}
}

func addCloudSeeds[T any](f *testing.F) {
	for _, v := range cloudSamples() {
		if _, ok := v.(T); ok {
			b := v.AppendTo(nil)
			f.Add(b)
			if len(b) > 3 {
				f.Add(b[:len(b)/2])
			}
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
}

func FuzzCloudPost(f *testing.F) {
	addCloudSeeds[*CloudPost](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(CloudPost), b) })
}

func FuzzCloudRelease(f *testing.F) {
	addCloudSeeds[*CloudRelease](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(CloudRelease), b) })
}

func FuzzCloudGet(f *testing.F) {
	addCloudSeeds[*CloudGet](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(CloudGet), b) })
}

func FuzzCloudUnsubscribe(f *testing.F) {
	addCloudSeeds[*CloudUnsubscribe](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(CloudUnsubscribe), b) })
}

func FuzzCloudReply(f *testing.F) {
	addCloudSeeds[*CloudReply](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(CloudReply), b) })
}

func FuzzCloudResult(f *testing.F) {
	addCloudSeeds[*CloudResult](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(CloudResult), b) })
}

func FuzzCloudNotice(f *testing.F) {
	addCloudSeeds[*CloudNotice](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(CloudNotice), b) })
}

func FuzzCloudResync(f *testing.F) {
	addCloudSeeds[*CloudResync](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(CloudResync), b) })
}

func FuzzCloudSrvPost(f *testing.F) {
	addCloudSeeds[*CloudSrvPost](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(CloudSrvPost), b) })
}

func FuzzCloudSrvRelease(f *testing.F) {
	addCloudSeeds[*CloudSrvRelease](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(CloudSrvRelease), b) })
}

func FuzzCloudSrvGet(f *testing.F) {
	addCloudSeeds[*CloudSrvGet](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(CloudSrvGet), b) })
}

func FuzzCloudSrvSub(f *testing.F) {
	addCloudSeeds[*CloudSrvSub](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(CloudSrvSub), b) })
}

func FuzzCloudSrvDrop(f *testing.F) {
	addCloudSeeds[*CloudSrvDrop](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(CloudSrvDrop), b) })
}

func FuzzCloudSrvSync(f *testing.F) {
	addCloudSeeds[*CloudSrvSync](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(CloudSrvSync), b) })
}

func FuzzCloudSrvReply(f *testing.F) {
	addCloudSeeds[*CloudSrvReply](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(CloudSrvReply), b) })
}

func FuzzCloudSrvResult(f *testing.F) {
	addCloudSeeds[*CloudSrvResult](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(CloudSrvResult), b) })
}

func FuzzCloudSrvMoved(f *testing.F) {
	addCloudSeeds[*CloudSrvMoved](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(CloudSrvMoved), b) })
}

func FuzzClientFrame(f *testing.F) {
	f.Add(AppendClientFrame(nil, 1, KindCloudNotify, []byte("x")))
	f.Add(AppendClientFrame(nil, 1, KindUser, nil))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, k, p, err := DecodeClientFrame(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			return
		}
		if !bytes.Equal(AppendClientFrame(nil, id, k, p), b) {
			t.Fatal("client frame does not re-encode")
		}
	})
}
