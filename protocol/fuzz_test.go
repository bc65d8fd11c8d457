package protocol

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// fuzzMaxFrame is the frame limit of FuzzReader: small, so that the fuzzer
// reaches the limit and the buffer's growth path easily.
const fuzzMaxFrame = 64

func frameSeeds() [][]byte {
	var two []byte
	two = AppendFrame(two, KindPing, 0, nil)
	two = AppendFrame(two, KindUser, 513, []byte("payload"))
	h := testHello()
	return [][]byte{
		nil,
		{0, 0, 0},
		{0, 0, 0, 2, 1, 0},
		{0xFF, 0xFF, 0xFF, 0xFF},
		AppendFrame(nil, KindUser, 1, bytes.Repeat([]byte{1}, fuzzMaxFrame-minLength)),
		AppendFrame(nil, KindUser, 1, bytes.Repeat([]byte{1}, fuzzMaxFrame)),
		two,
		two[:len(two)-1],
		AppendFrame(nil, KindHello, 0, h.AppendTo(nil)),
		[]byte("GET / HTTP/1.1\r\n\r\n"),
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range frameSeeds() {
		f.Add(s, 0)
		f.Add(s, fuzzMaxFrame)
	}
	f.Fuzz(func(t *testing.T, data []byte, maxFrame int) {
		fr, n, err := Decode(data, maxFrame)
		if err != nil {
			if n != 0 {
				t.Fatalf("n = %d with error %v", n, err)
			}
			if !errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, ErrShortFrame) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if n == 0 {
			// Need more: the input must be a proper prefix of a valid frame.
			if len(data) >= lengthSize {
				if want := lengthSize + int(uint32(data[0])<<24|uint32(data[1])<<16|uint32(data[2])<<8|uint32(data[3])); len(data) >= want {
					t.Fatalf("need more with %d bytes of a %d-byte frame", len(data), want)
				}
			}
			return
		}
		if n > len(data) || n != HeaderSize+len(fr.Payload) {
			t.Fatalf("n = %d, payload %d, input %d", n, len(fr.Payload), len(data))
		}
		if lim := effectiveMax(maxFrame); n-lengthSize > lim {
			t.Fatalf("frame of length %d passed limit %d", n-lengthSize, lim)
		}
		if re := AppendFrame(nil, fr.Kind, fr.Tag, fr.Payload); !bytes.Equal(re, data[:n]) {
			t.Fatalf("re-encoded %x, input %x", re, data[:n])
		}
	})
}

func FuzzReader(f *testing.F) {
	for i, s := range frameSeeds() {
		f.Add(s, uint64(i))
	}
	f.Add(bytes.Repeat(AppendFrame(nil, KindUser, 7, []byte("0123456789")), 20), uint64(3))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		src := &chunkReader{
			data:     data,
			rng:      rand.New(rand.NewPCG(seed, seed>>32)),
			maxChunk: 1 + int(seed%(2*fuzzMaxFrame)),
		}
		r := NewReader(src, fuzzMaxFrame)
		// Start from a small buffer so that growth and compaction are fuzzed
		// too (a fresh Reader's buffer already holds lengthSize+fuzzMaxFrame).
		r.buf = make([]byte, int((seed>>8)%(lengthSize+fuzzMaxFrame+1)))
		off := 0
		var err error
		for frames := 0; ; frames++ {
			if frames > len(data) {
				t.Fatalf("%d frames from %d bytes", frames, len(data))
			}
			var fr Frame
			fr, err = r.Next()
			if err != nil {
				break
			}
			re := AppendFrame(nil, fr.Kind, fr.Tag, fr.Payload)
			if off+len(re) > len(data) {
				t.Fatalf("frames total %d bytes, input %d", off+len(re), len(data))
			}
			if !bytes.Equal(re, data[off:off+len(re)]) {
				t.Fatalf("frame at %d re-encodes to %x, input %x", off, re, data[off:off+len(re)])
			}
			off += len(re)
			if len(r.buf) > lengthSize+fuzzMaxFrame {
				t.Fatalf("buffer grew to %d", len(r.buf))
			}
		}
		// The Reader must stop where Decode stops, with the same verdict.
		_, n, derr := Decode(data[off:], fuzzMaxFrame)
		switch {
		case derr != nil:
			if !errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, ErrShortFrame) ||
				errors.Is(err, ErrFrameTooLarge) != errors.Is(derr, ErrFrameTooLarge) {
				t.Fatalf("Reader error %v, Decode error %v at offset %d", err, derr, off)
			}
		case n != 0:
			t.Fatalf("Reader stopped with %v before a complete frame at %d", err, off)
		case off == len(data):
			if err != io.EOF {
				t.Fatalf("clean end: %v, want io.EOF", err)
			}
		default:
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("end inside a frame: %v, want io.ErrUnexpectedEOF", err)
			}
		}
		if _, err2 := r.Next(); err2 != err {
			t.Fatalf("error not sticky: %v then %v", err, err2)
		}
	})
}

// fuzzRoundTrip checks a decoder on arbitrary input: a successful decode
// re-encodes to exactly the input (the encoding is canonical) and decodes
// again to the same value.
func fuzzRoundTrip[T comparable, P interface {
	*T
	codec
}](t *testing.T, data []byte) {
	var v T
	if err := P(&v).Decode(data); err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		return
	}
	enc := P(&v).AppendTo(nil)
	if !bytes.Equal(enc, data) {
		t.Fatalf("re-encoded %x, input %x", enc, data)
	}
	var w T
	if err := P(&w).Decode(enc); err != nil || w != v {
		t.Fatalf("second decode %+v, %v; want %+v", w, err, v)
	}
}

func FuzzHello(f *testing.F) {
	h := testHello()
	f.Add(h.AppendTo(nil))
	f.Add((&Hello{}).AppendTo(nil))
	h.System = "système"
	f.Add(h.AppendTo(nil))
	f.Add([]byte{0, 1, 3, 0xFF, 0xFE, 0xFD})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip[Hello](t, data) })
}

func FuzzChallenge(f *testing.F) {
	c := testChallenge()
	f.Add(c.AppendTo(nil))
	f.Add((&Challenge{}).AppendTo(nil))
	f.Add([]byte{0, 1, 255})
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip[Challenge](t, data) })
}

func FuzzAuth(f *testing.F) {
	f.Add((&Auth{MAC: [32]byte{1, 2, 3}}).AppendTo(nil))
	f.Add([]byte{1, 2, 3})
	f.Add(make([]byte, 33))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip[Auth](t, data) })
}

func FuzzClose(f *testing.F) {
	f.Add((&Close{}).AppendTo(nil))
	f.Add((&Close{Reason: ReasonAuth, Message: "authentication failed"}).AppendTo(nil))
	f.Add((&Close{Reason: ReasonIO, Message: strings.Repeat("€", 400)}).AppendTo(nil))
	f.Add([]byte{0, 1, 0x04, 0x01})
	f.Add([]byte{0, 1, 0, 1, 0xC3})
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip[Close](t, data) })
}
