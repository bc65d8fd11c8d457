package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// testFrame is a frame and its expected encoding.
type testFrame struct {
	f   Frame
	enc []byte
}

// makeStream returns count frames of varied sizes (a few larger than the
// Reader's initial buffer, none over maxFrame) and their concatenation.
func makeStream(rng *rand.Rand, count, maxFrame int) ([]testFrame, []byte) {
	var frames []testFrame
	var stream []byte
	for i := range count {
		var size int
		switch {
		case i%97 == 13:
			size = initialReaderBuffer + rng.IntN(3*initialReaderBuffer) // spans the initial buffer
		case i%11 == 0:
			size = 0
		case i%5 == 0:
			size = rng.IntN(4096)
		default:
			size = rng.IntN(200)
		}
		size = min(size, maxFrame-minLength)
		payload := make([]byte, size)
		for j := range payload {
			payload[j] = byte(rng.Uint32())
		}
		f := Frame{Kind: Kind(rng.IntN(256)), Tag: uint16(rng.Uint32()), Payload: payload}
		enc := AppendFrame(nil, f.Kind, f.Tag, f.Payload)
		frames = append(frames, testFrame{f, enc})
		stream = append(stream, enc...)
	}
	return frames, stream
}

// chunkReader returns data in chunks of random sizes from 1 to maxChunk,
// sometimes with io.EOF on the last chunk.
type chunkReader struct {
	data     []byte
	rng      *rand.Rand
	maxChunk int
	reads    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	c.reads++
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(1+c.rng.IntN(c.maxChunk), len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	if len(c.data) == 0 && c.rng.IntN(2) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// countingReader counts calls to Read.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

func frameEqual(a, b Frame) bool {
	return a.Kind == b.Kind && a.Tag == b.Tag && bytes.Equal(a.Payload, b.Payload)
}

// readAll reads frames until an error and checks them against want. It
// returns the final error.
func readAll(t *testing.T, r *Reader, want []testFrame) error {
	t.Helper()
	for i := 0; ; i++ {
		f, err := r.Next()
		if err != nil {
			if i != len(want) {
				t.Fatalf("got %d frames before %v, want %d", i, err, len(want))
			}
			return err
		}
		if i >= len(want) {
			t.Fatalf("frame %d: got extra frame %v/%d (%d bytes)", i, f.Kind, f.Tag, len(f.Payload))
		}
		if !frameEqual(f, want[i].f) {
			t.Fatalf("frame %d: got kind %d tag %d len %d, want kind %d tag %d len %d",
				i, f.Kind, f.Tag, len(f.Payload), want[i].f.Kind, want[i].f.Tag, len(want[i].f.Payload))
		}
		if cap(r.buf) > lengthSize+r.max {
			t.Fatalf("buffer grew to %d, limit %d", cap(r.buf), lengthSize+r.max)
		}
	}
}

func TestAppendFrameLayout(t *testing.T) {
	got := AppendFrame([]byte("x"), KindUser, 0x1234, []byte("hey"))
	want := []byte{'x', 0, 0, 0, 6, byte(KindUser), 0x12, 0x34, 'h', 'e', 'y'}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendFrame = %x, want %x", got, want)
	}
	h := AppendHeader(nil, KindPing, 7, 0)
	if !bytes.Equal(h, []byte{0, 0, 0, 3, byte(KindPing), 0, 7}) || len(h) != HeaderSize {
		t.Fatalf("AppendHeader = %x", h)
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 64, 1000, 70000} {
		payload := bytes.Repeat([]byte{byte(size)}, size)
		enc := AppendFrame(nil, KindUser, uint16(size), payload)
		enc = append(enc, 0xAA, 0xBB) // the next frame's first bytes
		f, n, err := Decode(enc, 0)
		if err != nil || n != HeaderSize+size {
			t.Fatalf("size %d: Decode n=%d err=%v", size, n, err)
		}
		if f.Kind != KindUser || f.Tag != uint16(size) || !bytes.Equal(f.Payload, payload) {
			t.Fatalf("size %d: Decode = %v/%d len %d", size, f.Kind, f.Tag, len(f.Payload))
		}
		if size > 0 && &f.Payload[0] != &enc[HeaderSize] {
			t.Fatalf("size %d: payload does not alias the input", size)
		}
		if cap(f.Payload) != size {
			t.Fatalf("size %d: payload capacity %d reaches past the frame", size, cap(f.Payload))
		}
		// Every proper prefix asks for more bytes.
		for i := range HeaderSize + size {
			if _, n, err := Decode(enc[:i], 0); n != 0 || err != nil {
				t.Fatalf("size %d prefix %d: n=%d err=%v, want 0, nil", size, i, n, err)
			}
		}
	}
}

func TestDecodeTooLarge(t *testing.T) {
	b := []byte{0xFF, 0xFF, 0xFF, 0xFF}
	_, n, err := Decode(b, 1<<20)
	if !errors.Is(err, ErrFrameTooLarge) || n != 0 {
		t.Fatalf("Decode(0xFFFFFFFF) = %d, %v; want ErrFrameTooLarge", n, err)
	}
	if msg := err.Error(); !strings.Contains(msg, "4294967295") || !strings.Contains(msg, "1048576") {
		t.Fatalf("error %q lacks the declared length or the limit", msg)
	}

	// The limit is on the length field: maxFrame itself passes, one more fails.
	const limit = 100
	ok := AppendFrame(nil, KindUser, 1, make([]byte, limit-minLength))
	if _, n, err := Decode(ok, limit); err != nil || n != len(ok) {
		t.Fatalf("frame at the limit: n=%d err=%v", n, err)
	}
	over := AppendFrame(nil, KindUser, 1, make([]byte, limit-minLength+1))
	if _, _, err := Decode(over, limit); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("frame over the limit: err=%v", err)
	}

	// maxFrame <= 0 means DefaultMaxFrame.
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], DefaultMaxFrame+1)
	for _, m := range []int{0, -1} {
		if _, _, err := Decode(hdr[:], m); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("maxFrame %d: length DefaultMaxFrame+1 gave %v", m, err)
		}
	}
	binary.BigEndian.PutUint32(hdr[:], DefaultMaxFrame)
	if _, n, err := Decode(hdr[:], 0); err != nil || n != 0 {
		t.Fatalf("length DefaultMaxFrame with 4 bytes: n=%d err=%v, want need more", n, err)
	}
}

func TestDecodeShortFrame(t *testing.T) {
	for l := range uint32(minLength) {
		b := binary.BigEndian.AppendUint32(nil, l)
		b = append(b, 1, 2, 3, 4)
		if _, n, err := Decode(b, 0); !errors.Is(err, ErrShortFrame) || n != 0 {
			t.Fatalf("length %d: n=%d err=%v, want ErrShortFrame", l, n, err)
		}
		r := NewReader(bytes.NewReader(b), 0)
		if _, err := r.Next(); !errors.Is(err, ErrShortFrame) {
			t.Fatalf("Reader, length %d: err=%v, want ErrShortFrame", l, err)
		}
	}
}

func TestReaderStream(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	frames, stream := makeStream(rng, 400, DefaultMaxFrame)
	if len(stream) <= 2*initialReaderBuffer {
		t.Fatalf("stream of %d bytes is too small to exercise growth", len(stream))
	}
	readers := map[string]func() io.Reader{
		"whole":     func() io.Reader { return bytes.NewReader(stream) },
		"onebyte":   func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) },
		"half":      func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) },
		"dataerr":   func() io.Reader { return iotest.DataErrReader(bytes.NewReader(stream)) },
		"chunks7":   func() io.Reader { return &chunkReader{data: stream, rng: rand.New(rand.NewPCG(3, 4)), maxChunk: 7} },
		"chunks4k":  func() io.Reader { return &chunkReader{data: stream, rng: rand.New(rand.NewPCG(5, 6)), maxChunk: 4096} },
		"chunks64k": func() io.Reader { return &chunkReader{data: stream, rng: rand.New(rand.NewPCG(7, 8)), maxChunk: 65536} },
	}
	for name, mk := range readers {
		t.Run(name, func(t *testing.T) {
			r := NewReader(mk(), 0)
			if err := readAll(t, r, frames); err != io.EOF {
				t.Fatalf("end of stream: %v, want io.EOF", err)
			}
			if r.Buffered() != 0 {
				t.Fatalf("Buffered = %d after EOF", r.Buffered())
			}
			if _, err := r.Next(); err != io.EOF {
				t.Fatalf("Next after EOF: %v", err)
			}
		})
	}
}

func TestReaderManyFramesPerRead(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var stream []byte
	var frames []testFrame
	for i := range 200 {
		p := make([]byte, 64)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		f := Frame{Kind: KindUser, Tag: uint16(i), Payload: p}
		enc := AppendFrame(nil, f.Kind, f.Tag, f.Payload)
		frames = append(frames, testFrame{f, enc})
		stream = append(stream, enc...)
	}
	cr := &countingReader{r: bytes.NewReader(stream)}
	r := NewReader(cr, 0)
	for i := range frames {
		f, err := r.Next()
		if err != nil || !frameEqual(f, frames[i].f) {
			t.Fatalf("frame %d: err=%v", i, err)
		}
		if want := len(stream) - (i+1)*len(frames[i].enc); r.Buffered() != want {
			t.Fatalf("frame %d: Buffered = %d, want %d", i, r.Buffered(), want)
		}
	}
	if cr.reads != 1 {
		t.Fatalf("%d frames in one %d-byte read took %d reads", len(frames), len(stream), cr.reads)
	}
}

func TestReaderTooLargeDoesNotGrow(t *testing.T) {
	// A length field of 0xFFFFFFFF followed by plenty of bytes: the Reader
	// must refuse it from the header alone.
	stream := append([]byte{0xFF, 0xFF, 0xFF, 0xFF, 1, 0, 0}, make([]byte, 100<<10)...)
	r := NewReader(bytes.NewReader(stream), 1<<20)
	_, err := r.Next()
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Next = %v, want ErrFrameTooLarge", err)
	}
	if len(r.buf) > initialReaderBuffer {
		t.Fatalf("buffer grew to %d bytes before refusing the frame", len(r.buf))
	}
	if _, err2 := r.Next(); err2 != err {
		t.Fatalf("second Next = %v, want the same error %v", err2, err)
	}

	// Same with the header arriving one byte at a time after good frames.
	good := AppendFrame(nil, KindUser, 1, []byte("ok"))
	stream = append(good, 0x00, 0x20, 0x00, 0x00) // 2 MiB
	r = NewReader(iotest.OneByteReader(bytes.NewReader(stream)), 1<<20)
	if f, err := r.Next(); err != nil || string(f.Payload) != "ok" {
		t.Fatalf("first frame: %v", err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Next = %v, want ErrFrameTooLarge", err)
	}
	if len(r.buf) > initialReaderBuffer {
		t.Fatalf("buffer grew to %d bytes", len(r.buf))
	}
}

func TestReaderLimitExact(t *testing.T) {
	const limit = 100 << 10 // larger than the initial buffer
	atLimit := AppendFrame(nil, KindUser, 1, bytes.Repeat([]byte{7}, limit-minLength))
	over := AppendFrame(nil, KindUser, 2, make([]byte, limit-minLength+1))
	stream := append(append([]byte{}, atLimit...), over...)
	r := NewReader(iotest.HalfReader(bytes.NewReader(stream)), limit)
	f, err := r.Next()
	if err != nil || len(f.Payload) != limit-minLength {
		t.Fatalf("frame at the limit: len %d err %v", len(f.Payload), err)
	}
	if len(r.buf) > lengthSize+limit {
		t.Fatalf("buffer %d exceeds %d", len(r.buf), lengthSize+limit)
	}
	if _, err := r.Next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("frame over the limit: %v", err)
	}

	// Growth doubles the buffer but stops at the frame's size.
	const limit2 = initialReaderBuffer + initialReaderBuffer/2
	mid := AppendFrame(nil, KindUser, 3, make([]byte, initialReaderBuffer))
	r = NewReader(bytes.NewReader(mid), limit2)
	if f, err := r.Next(); err != nil || len(f.Payload) != initialReaderBuffer {
		t.Fatalf("frame over the initial buffer: %v", err)
	}
	if len(r.buf) != len(mid) {
		t.Fatalf("buffer grew to %d, want the frame's %d", len(r.buf), len(mid))
	}

	// A small limit caps the initial buffer too.
	r = NewReader(bytes.NewReader(AppendFrame(nil, KindPing, 0, nil)), 16)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if len(r.buf) > lengthSize+16 {
		t.Fatalf("buffer %d for a 16-byte limit", len(r.buf))
	}
}

func TestReaderTruncated(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	var frames []testFrame
	var stream []byte
	var ends []int // stream offsets where a frame ends
	for i := range 12 {
		p := make([]byte, rng.IntN(40))
		f := Frame{Kind: KindUser, Tag: uint16(i), Payload: p}
		enc := AppendFrame(nil, f.Kind, f.Tag, p)
		frames = append(frames, testFrame{f, enc})
		stream = append(stream, enc...)
		ends = append(ends, len(stream))
	}
	for cut := 0; cut < len(stream); cut++ {
		complete := 0
		for complete < len(ends) && ends[complete] <= cut {
			complete++
		}
		want := io.ErrUnexpectedEOF
		if cut == 0 || (complete > 0 && ends[complete-1] == cut) {
			want = io.EOF
		}
		for _, mk := range []func([]byte) io.Reader{
			func(b []byte) io.Reader { return bytes.NewReader(b) },
			func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
			func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
		} {
			r := NewReader(mk(stream[:cut]), 0)
			if err := readAll(t, r, frames[:complete]); err != want {
				t.Fatalf("cut at %d: %v, want %v", cut, err, want)
			}
			if _, err := r.Next(); err != want {
				t.Fatalf("cut at %d: second Next %v, want %v", cut, err, want)
			}
		}
	}

	// Truncated inside a frame larger than the initial buffer.
	big := AppendFrame(nil, KindUser, 1, make([]byte, 3*initialReaderBuffer))
	r := NewReader(iotest.HalfReader(bytes.NewReader(big[:len(big)-1])), 0)
	if _, err := r.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("big frame cut short: %v", err)
	}
}

func TestReaderReadErrorAfterFrames(t *testing.T) {
	errBoom := errors.New("boom")
	rng := rand.New(rand.NewPCG(13, 14))
	frames, stream := makeStream(rng, 30, DefaultMaxFrame)

	// All frames arrive before the error: the frames first, then the error.
	r := NewReader(io.MultiReader(bytes.NewReader(stream), iotest.ErrReader(errBoom)), 0)
	if err := readAll(t, r, frames); err != errBoom {
		t.Fatalf("got %v, want the reader's error as is", err)
	}
	if _, err := r.Next(); err != errBoom {
		t.Fatalf("second Next: %v", err)
	}

	// The error arrives mid-frame: the complete frames, then the error.
	cut := len(stream) - 1
	r = NewReader(io.MultiReader(bytes.NewReader(stream[:cut]), iotest.ErrReader(errBoom)), 0)
	if err := readAll(t, r, frames[:len(frames)-1]); err != errBoom {
		t.Fatalf("mid-frame: got %v, want the reader's error", err)
	}
}

type zeroReader struct{ reads int }

func (z *zeroReader) Read([]byte) (int, error) { z.reads++; return 0, nil }

type liarReader struct{}

func (liarReader) Read(p []byte) (int, error) { return len(p) + 1, nil }

func TestReaderBadSources(t *testing.T) {
	z := &zeroReader{}
	r := NewReader(z, 0)
	if _, err := r.Next(); err != io.ErrNoProgress {
		t.Fatalf("reader returning nothing: %v, want io.ErrNoProgress", err)
	}
	if z.reads > 2*maxEmptyReads {
		t.Fatalf("%d reads before giving up", z.reads)
	}
	r = NewReader(liarReader{}, 0)
	if _, err := r.Next(); err == nil {
		t.Fatal("reader claiming more bytes than asked: no error")
	}
}

func TestLooksLikeHTTP(t *testing.T) {
	req := []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1:7350\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if !LooksLikeHTTP(req) {
		t.Fatal("WebSocket upgrade request not recognised")
	}
	for _, s := range []string{
		"POST /x HTTP/1.1", "PUT /x HTTP/1.1", "HEAD / HTTP/1.0", "OPTIONS * HTTP/1.1",
		"DELETE /x HTTP/1.1", "PATCH /x HTTP/1.1", "CONNECT a:1 HTTP/1.1", "TRACE / HTTP/1.1",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	} {
		if !LooksLikeHTTP([]byte(s)) {
			t.Errorf("%q not recognised", s)
		}
	}
	h := Hello{Version: Version, System: "openworld", Group: "world", ServerID: "world-1"}
	frame := AppendFrame(nil, KindHello, 0, h.AppendTo(nil))
	if LooksLikeHTTP(frame) {
		t.Fatal("a Hello frame looks like HTTP")
	}
	for _, s := range []string{"", "GET", "get / HTTP/1.1", "GETX", "\x00\x00\x00\x03"} {
		if LooksLikeHTTP([]byte(s)) {
			t.Errorf("%q recognised as HTTP", s)
		}
	}
	// Every method token is far beyond any frame limit as a length field.
	for _, m := range httpMethods {
		if l := binary.BigEndian.Uint32([]byte(m)); l <= 1<<30 {
			t.Errorf("%q as a length is %d, a plausible frame", m, l)
		}
	}
}

func ExampleReader() {
	var stream []byte
	stream = AppendFrame(stream, KindPing, 0, nil)
	stream = AppendFrame(stream, KindUser, 42, []byte("hello"))
	r := NewReader(bytes.NewReader(stream), 0)
	for {
		f, err := r.Next()
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%v tag=%d payload=%q\n", f.Kind, f.Tag, f.Payload)
	}
	// Output:
	// ping tag=0 payload=""
	// user tag=42 payload="hello"
	// EOF
}

// TestReaderGrowsWithArrivingBytes checks that announcing a large frame
// costs the sender the bytes: a Reader's buffer follows what arrived, not
// what the length field promised.
func TestReaderGrowsWithArrivingBytes(t *testing.T) {
	const limit = 16 << 20
	for _, sent := range []int{0, 100, initialReaderBuffer + 1000} {
		stream := AppendHeader(nil, KindUser, 0, limit-minLength)
		stream = append(stream, make([]byte, sent)...)
		r := NewReader(bytes.NewReader(stream), limit)
		if _, err := r.Next(); err != io.ErrUnexpectedEOF {
			t.Fatalf("%d bytes of a %d-byte frame: %v, want io.ErrUnexpectedEOF", sent, limit, err)
		}
		if max := 2 * max(initialReaderBuffer, len(stream)); len(r.buf) > max {
			t.Fatalf("%d bytes of a %d-byte frame grew the buffer to %d, want at most %d", sent, limit, len(r.buf), max)
		}
	}
}

// A Reader made for the handshake's small limit reads many frames at once
// after SetMaxFrame raises the limit, keeping what it had buffered.
func TestReaderSetMaxFrameGrowsBuffer(t *testing.T) {
	var stream []byte
	stream = AppendFrame(stream, KindUser, 1, []byte("hello"))
	for i := range 20 {
		stream = AppendFrame(stream, KindUser, uint16(i), make([]byte, 1000))
	}
	src := &countingReader{r: bytes.NewReader(stream)}
	r := NewReader(src, MaxHandshakeFrame)
	if f, err := r.Next(); err != nil || string(f.Payload) != "hello" {
		t.Fatalf("first frame: %q, %v", f.Payload, err)
	}
	r.SetMaxFrame(DefaultMaxFrame)
	if len(r.buf) != initialReaderBuffer {
		t.Fatalf("buffer of %d bytes after SetMaxFrame, want %d", len(r.buf), initialReaderBuffer)
	}
	reads := src.reads
	for i := range 20 {
		f, err := r.Next()
		if err != nil || f.Tag != uint16(i) || len(f.Payload) != 1000 {
			t.Fatalf("frame %d: tag %d, %d bytes, %v", i, f.Tag, len(f.Payload), err)
		}
	}
	// 20 KB of frames fit the grown buffer: one more read, not one a frame.
	if got := src.reads - reads; got > 1 {
		t.Errorf("%d reads for 20 frames after SetMaxFrame, want 1", got)
	}
}
