package cloudwire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol"
)

// codec is what every cloudwire message implements.
type codec interface {
	AppendTo(dst []byte) []byte
	Decode(b []byte) error
}

func testRows() []cloud.Row {
	return []cloud.Row{
		{Key: cloud.Key{Primary: "app", Secondary: 1}, Uploader: protocol.ClientRef{Server: "client-1", ID: 7}, Addr: "127.0.0.1:5000", Via: "client-1", Data: []byte("sixteen")},
		{Key: cloud.Key{Primary: "app", Secondary: 2}, Uploader: protocol.ClientRef{Server: "world-1"}, Via: "world-1", Data: []byte{}},
		{Key: cloud.Key{Primary: "é", Secondary: 1 << 31}, Uploader: protocol.ClientRef{Server: "c", ID: 1 << 60}, Addr: "[::1]:1", Via: "c", Data: bytes.Repeat([]byte{9}, 300)},
	}
}

// cloudSamples returns one filled value of every cloud payload type.
func cloudSamples() []codec {
	rows := testRows()
	keys := []cloud.Key{{Primary: "a"}, {Primary: "bb", Secondary: 7}, {Primary: strings.Repeat("k", cloud.MaxPrimary), Secondary: 1}}
	refs := []protocol.ClientRef{{Server: "s1", ID: 1}, {Server: "s2"}}
	return []codec{
		&Post{Req: 1, Key: keys[1], Data: []byte("data")},
		&Post{Req: 2, Key: keys[0]},
		&Release{Req: 3, Keys: keys},
		&Get{Req: 4, Query: cloud.Query{Keys: keys, Uploaders: refs, Offset: 5, Limit: 6, Subscribe: true}},
		&Get{Req: 4, Query: cloud.Query{Keys: keys[:1]}},
		&Unsubscribe{Req: 7, Keys: keys, Uploaders: refs},
		&Reply{Req: 8, Code: cloud.CodeUploadLimit, Message: "over the limit"},
		&Result{Req: 9, Code: cloud.CodeOK, Total: 10, Truncated: true, Partial: true, Missing: keys[:1], Rows: rows},
		&Result{Req: 9, Code: cloud.CodeRejected, Message: "no"},
		&Notice{Type: Updated, Created: true, Row: rows[0]},
		&Notice{Type: Deleted, Row: rows[2]},
		&Resync{Truncated: true, Key: keys[1], Rows: rows},
		&Resync{Key: keys[1]},
		&SrvPost{Req: 1 << 40, Sync: true, Key: keys[2], Uploader: refs[0], Addr: "1.2.3.4:5", Data: []byte("x")},
		&SrvRelease{Req: 11, Uploader: refs[1], Addr: "10.0.0.1:9", Keys: keys},
		&SrvGet{Req: 12, Sync: true, CountOnly: true, Asker: refs[0], Addr: "a", Offset: 1, Limit: 2, MaxBytes: 3, Keys: keys, Uploaders: refs},
		&SrvSub{Mode: SubList, Keys: keys, Uploaders: refs},
		&SrvSub{Mode: SubAll, Keys: keys},
		&SrvSub{Mode: SubRemove, Keys: keys},
		&SrvDrop{Uploader: refs[0]},
		&SrvSync{Op: SyncEnd},
		&SrvSync{Op: SyncRing, Ring: 1<<63 | 5},
		&SrvReply{Req: 13, Code: cloud.CodeNotOwner, Message: "ask another"},
		&SrvResult{Req: 14, Cut: true, Counts: []uint32{3, 0, 1 << 31}, Rows: rows},
		&SrvResult{Req: 14, Code: cloud.CodeNotOwner},
		&SrvResult{Req: 15, Counts: []uint32{2, 0, 0}, Rows: rows[:2], Refused: []Refusal{{1, cloud.CodeNotOwner}, {2, cloud.CodeUnavailable}}},
		&SrvMoved{Keys: keys},
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

func TestRoundTrip(t *testing.T) {
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
		case *Result:
			if m.Rows != nil && !reflect.DeepEqual(w.(*Result).Rows[2].Data, m.Rows[2].Data) {
				t.Fatal("row data lost")
			}
		case *Get:
			if w.(*Get).Query.Subscribe != m.Query.Subscribe || w.(*Get).Query.Limit != m.Query.Limit {
				t.Fatal("query fields lost")
			}
		}
	}
}

func TestRejectsTruncationAndTrailing(t *testing.T) {
	for _, v := range cloudSamples() {
		b := v.AppendTo(nil)
		// Post payloads end with their data: every prefix past the header
		// is a valid shorter post, so only the header is checked.
		min := 0
		switch v.(type) {
		case *Post:
			min = len(b) - len(v.(*Post).Data)
		case *SrvPost:
			min = len(b) - len(v.(*SrvPost).Data)
		}
		for n := 0; n < len(b); n++ {
			if n >= min && min > 0 {
				break
			}
			if err := fresh(v).Decode(b[:n]); !errors.Is(err, protocol.ErrMalformed) {
				t.Fatalf("%T: prefix %d of %d: %v", v, n, len(b), err)
			}
		}
		if min > 0 {
			continue
		}
		if err := fresh(v).Decode(append(b, 0)); !errors.Is(err, protocol.ErrMalformed) {
			t.Fatalf("%T: trailing byte: %v", v, err)
		}
	}
}

func TestRejectsInvalid(t *testing.T) {
	cases := []struct {
		name string
		v    codec
		b    []byte
	}{
		{"unknown get flag", &Get{}, []byte{0, 0, 0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"notice type 0", &Notice{}, append([]byte{0, 0}, AppendRow(nil, &testRows()[0])...)},
		{"deleted and created", &Notice{}, append([]byte{byte(Deleted), 1}, AppendRow(nil, &testRows()[0])...)},
		{"sub list without uploaders", &SrvSub{}, []byte{byte(SubList), 0, 0, 0, 0}},
		{"sub all with uploaders", &SrvSub{}, appendRefs([]byte{byte(SubAll), 0, 0}, []protocol.ClientRef{{Server: "s"}})},
		{"sub mode 3", &SrvSub{}, []byte{3, 0, 0, 0, 0}},
		{"sync op 0", &SrvSync{}, []byte{0}},
		{"sync op 5", &SrvSync{}, []byte{5}},
		{"sync ring without digest", &SrvSync{}, []byte{4, 1, 2}},
		{"sync end with digest", &SrvSync{}, []byte{2, 0, 0, 0, 0, 0, 0, 0, 1}},
		{"refused flag without keys", &SrvResult{}, append((&SrvReply{Req: 1}).AppendTo(nil), 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)},
		{"refused index past counts", &SrvResult{}, append((&SrvReply{Req: 1}).AppendTo(nil), 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 2)},
		{"refused with code OK", &SrvResult{}, append((&SrvReply{Req: 1}).AppendTo(nil), 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0)},
		{"refused out of order", &SrvResult{}, append((&SrvReply{Req: 1}).AppendTo(nil), 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 2, 0, 0, 0, 2)},
		{"invalid UTF-8 key", &Release{}, []byte{0, 0, 0, 1, 0, 1, 1, 0xff, 0, 0, 0, 0}},
		// Counts that promise more than the bytes hold fail before
		// allocating for them.
		{"huge key count", &Release{}, []byte{0, 0, 0, 1, 0xff, 0xff, 0}},
		{"huge row count", &Resync{}, append(appendKey([]byte{0}, cloud.Key{Primary: "k", Secondary: 1}), 0xff, 0xff, 0xff, 0xff)},
		{"huge data length", &Notice{}, append(append([]byte{1, 0}, appendKey(nil, cloud.Key{Primary: "k", Secondary: 1})...), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff)},
		{"huge counts", &SrvResult{}, append((&SrvReply{Req: 1}).AppendTo(nil), 0, 0xff, 0xff)},
		{"long message", &Reply{}, append([]byte{0, 0, 0, 1, 0, 0, 0x04, 0x01}, make([]byte, 1025)...)},
	}
	for _, c := range cases {
		if err := c.v.Decode(c.b); !errors.Is(err, protocol.ErrMalformed) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestAppendCutsMessage(t *testing.T) {
	r := Reply{Req: 1, Message: strings.Repeat("€", 1000) + "\xff"}
	var got Reply
	if err := got.Decode(r.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	if len(got.Message) > MaxMessage || !strings.HasPrefix(r.Message, got.Message) {
		t.Fatalf("message of %d bytes", len(got.Message))
	}
}

func TestRowSize(t *testing.T) {
	for _, r := range testRows() {
		if got, want := RowSize(&r), len(AppendRow(nil, &r)); got != want {
			t.Fatalf("RowSize %d, encoded %d", got, want)
		}
	}
}

func TestNoticeTypeIsNotificationType(t *testing.T) {
	// A notice's type converts to the notification type by value.
	if cloud.NotificationType(Updated) != cloud.NotifyUpdated || cloud.NotificationType(Deleted) != cloud.NotifyDeleted {
		t.Error("notice and notification types disagree")
	}
}

func TestRingDigestIgnoresOrder(t *testing.T) {
	a := RingDigest([]string{"cloud-2", "cloud-1", "cloud-3"})
	if b := RingDigest([]string{"cloud-1", "cloud-2", "cloud-3"}); a != b {
		t.Fatal("the same set in another order has another digest")
	}
	if RingDigest([]string{"cloud-1", "cloud-2"}) == a || RingDigest([]string{"cloud-1", "cloud-23"}) == RingDigest([]string{"cloud-12", "cloud-3"}) {
		t.Fatal("different sets share a digest")
	}
}

// TestAppendToNilAllocatesOnce: the messages that travel on every Post
// and Get size their buffer before appending, so encoding into nil costs
// one allocation, not one per growth.
func TestAppendToNilAllocatesOnce(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	for _, v := range cloudSamples() {
		switch v.(type) {
		case *Release, *Unsubscribe, *SrvRelease, *SrvSub, *SrvDrop, *SrvSync, *SrvMoved:
			continue // rare messages, left to grow
		}
		if allocs := testing.AllocsPerRun(20, func() { v.AppendTo(nil) }); allocs != 1 {
			t.Errorf("%T.AppendTo(nil): %v allocations, want 1", v, allocs)
		}
	}
}
