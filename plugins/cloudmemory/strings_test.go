package cloudmemory

import (
	"reflect"
	"testing"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
)

// TestDecodeWithPooledStrings: frames decoded with strings borrowed from
// a stringsPool decode to the same values as with Decode, and a replica's
// answer of one row allocates only its row slice: its key, uploader and
// addresses are the strings seen before.
func TestDecodeWithPooledStrings(t *testing.T) {
	var sp stringsPool
	row := cloud.Row{
		Key:      cloud.Key{Primary: "zone/7", Secondary: 3},
		Uploader: protocol.ClientRef{Server: "edge-1", ID: 42},
		Addr:     "127.0.0.1:50000",
		Via:      "edge-1",
		Data:     []byte("position 1 2 3"),
	}
	res := cloudwire.SrvResult{Req: 9, Code: cloud.CodeOK, Counts: []uint32{1}, Rows: []cloud.Row{row}}
	payload := res.AppendTo(nil)
	var want, got cloudwire.SrvResult
	if err := want.Decode(payload); err != nil {
		t.Fatal(err)
	}
	if err := decodeWith(&sp, &got, payload); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
	if raceEnabled {
		return // -race allocates, and its pools drop what they are given
	}
	plain := testing.AllocsPerRun(100, func() { want.Decode(payload) })
	pooled := testing.AllocsPerRun(100, func() { decodeWith(&sp, &got, payload) })
	// Decode: the counts, the rows and four strings; pooled: no strings.
	if pooled > plain-4 {
		t.Errorf("%v allocations per pooled decode, %v per plain one: want 4 fewer", pooled, plain)
	}
	// Malformed input is still an error.
	if err := decodeWith(&sp, &got, payload[:len(payload)-1]); err == nil {
		t.Fatal("a truncated result decoded")
	}
}
