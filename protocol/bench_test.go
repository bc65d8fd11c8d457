package protocol

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// loopReader reads data forever, starting over at its end.
type loopReader struct{ r *bytes.Reader }

func (l loopReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if err == io.EOF {
		l.r.Seek(0, io.SeekStart)
		err = nil
	}
	return n, err
}

func benchmarkReader(b *testing.B, payloadSize int) {
	payload := bytes.Repeat([]byte{0x5A}, payloadSize)
	frameSize := HeaderSize + payloadSize
	var stream []byte
	for i := 0; len(stream) < 1<<20 || i == 0; i++ {
		stream = AppendFrame(stream, KindUser, uint16(i), payload)
	}
	r := NewReader(loopReader{bytes.NewReader(stream)}, 0)
	b.SetBytes(int64(frameSize))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		f, err := r.Next()
		if err != nil || len(f.Payload) != payloadSize {
			b.Fatalf("Next: %d bytes, %v", len(f.Payload), err)
		}
	}
}

// BenchmarkReader64 reads 64-byte-payload frames, many per read call: the
// hot path of a link. One op is one frame.
func BenchmarkReader64(b *testing.B) { benchmarkReader(b, 64) }

func BenchmarkReader(b *testing.B) {
	for _, size := range []int{16, 256, 4096, 65536} {
		b.Run(fmt.Sprint(size), func(b *testing.B) { benchmarkReader(b, size) })
	}
}

func BenchmarkAppendFrame64(b *testing.B) {
	payload := bytes.Repeat([]byte{0x5A}, 64)
	dst := make([]byte, 0, 4096)
	b.SetBytes(int64(HeaderSize + len(payload)))
	b.ReportAllocs()
	for i := range b.N {
		if len(dst)+HeaderSize+len(payload) > cap(dst) {
			dst = dst[:0]
		}
		dst = AppendFrame(dst, KindUser, uint16(i), payload)
	}
}

func BenchmarkDecode64(b *testing.B) {
	frame := AppendFrame(nil, KindUser, 1, bytes.Repeat([]byte{0x5A}, 64))
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for range b.N {
		if _, n, err := Decode(frame, 0); n != len(frame) || err != nil {
			b.Fatal(n, err)
		}
	}
}
