package cloudwire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cloudrift/cloudrift/protocol"
)

// fuzzCloud checks one decoder on arbitrary input: no panic, errors wrap
// protocol.ErrMalformed, and a decoded value re-encodes to exactly the input.
func fuzzCloud(t *testing.T, v codec, data []byte) {
	if err := v.Decode(data); err != nil {
		if !errors.Is(err, protocol.ErrMalformed) {
			t.Fatalf("%T: error %v does not wrap protocol.ErrMalformed", v, err)
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

func FuzzPost(f *testing.F) {
	addCloudSeeds[*Post](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(Post), b) })
}

func FuzzRelease(f *testing.F) {
	addCloudSeeds[*Release](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(Release), b) })
}

func FuzzGet(f *testing.F) {
	addCloudSeeds[*Get](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(Get), b) })
}

func FuzzUnsubscribe(f *testing.F) {
	addCloudSeeds[*Unsubscribe](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(Unsubscribe), b) })
}

func FuzzReply(f *testing.F) {
	addCloudSeeds[*Reply](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(Reply), b) })
}

func FuzzResult(f *testing.F) {
	addCloudSeeds[*Result](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(Result), b) })
}

func FuzzNotice(f *testing.F) {
	addCloudSeeds[*Notice](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(Notice), b) })
}

func FuzzResync(f *testing.F) {
	addCloudSeeds[*Resync](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(Resync), b) })
}

func FuzzSrvPost(f *testing.F) {
	addCloudSeeds[*SrvPost](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(SrvPost), b) })
}

func FuzzSrvRelease(f *testing.F) {
	addCloudSeeds[*SrvRelease](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(SrvRelease), b) })
}

func FuzzSrvGet(f *testing.F) {
	addCloudSeeds[*SrvGet](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(SrvGet), b) })
}

func FuzzSrvSub(f *testing.F) {
	addCloudSeeds[*SrvSub](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(SrvSub), b) })
}

func FuzzSrvDrop(f *testing.F) {
	addCloudSeeds[*SrvDrop](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(SrvDrop), b) })
}

func FuzzSrvSync(f *testing.F) {
	addCloudSeeds[*SrvSync](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(SrvSync), b) })
}

func FuzzSrvReply(f *testing.F) {
	addCloudSeeds[*SrvReply](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(SrvReply), b) })
}

func FuzzSrvResult(f *testing.F) {
	addCloudSeeds[*SrvResult](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(SrvResult), b) })
}

func FuzzSrvMoved(f *testing.F) {
	addCloudSeeds[*SrvMoved](f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCloud(t, new(SrvMoved), b) })
}
