package protocol

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// lengthSize is the size of a frame's length field; the rest of the header
// (kind and tag) is counted by the length itself.
const lengthSize = 4

// minLength is the smallest valid length field: kind and tag, no payload.
const minLength = HeaderSize - lengthSize

// initialReaderBuffer is the size of a Reader's buffer before any frame
// larger than it arrives.
const initialReaderBuffer = 32 << 10

// minGrowth is the least a full Reader buffer grows by when it grows.
const minGrowth = 512

// maxEmptyReads is how many consecutive (0, nil) reads a Reader tolerates
// before it gives up with io.ErrNoProgress.
const maxEmptyReads = 100

// AppendHeader appends the header of a frame whose payload is payloadLen
// bytes long and returns the extended slice. The caller appends the payload.
// payloadLen must be between 0 and math.MaxUint32-3; the length field holds
// the low 32 bits of 3+payloadLen otherwise, which the receiver rejects or
// misreads. Senders keep frames within the peer's limit (DefaultMaxFrame
// unless configured otherwise).
func AppendHeader(dst []byte, kind Kind, tag uint16, payloadLen int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(minLength+payloadLen))
	dst = append(dst, byte(kind))
	return binary.BigEndian.AppendUint16(dst, tag)
}

// AppendFrame appends a whole frame (header and payload) and returns the
// extended slice. See AppendHeader for the limits on the payload's length.
func AppendFrame(dst []byte, kind Kind, tag uint16, payload []byte) []byte {
	dst = AppendHeader(dst, kind, tag, len(payload))
	return append(dst, payload...)
}

// maxLengthField is the largest length field an int can hold: math.MaxUint32
// on 64-bit platforms, math.MaxInt32 on 32-bit ones.
const maxLengthField = int(uint64(math.MaxUint32) & uint64(math.MaxInt))

// effectiveMax returns the frame limit Decode and Reader apply for maxFrame:
// DefaultMaxFrame when maxFrame <= 0, and never more than a length field can
// declare or than lengthSize+limit can hold in an int.
func effectiveMax(maxFrame int) int {
	if maxFrame <= 0 {
		return DefaultMaxFrame
	}
	return min(maxFrame, maxLengthField, math.MaxInt-HeaderSize)
}

// checkLength validates a frame's length field against the limit (an
// effectiveMax result) and returns the frame's total size on the wire.
func checkLength(length uint32, limit int) (int, error) {
	if uint64(length) > uint64(limit) {
		return 0, fmt.Errorf("%w: length %d exceeds limit %d", ErrFrameTooLarge, length, limit)
	}
	if length < minLength {
		return 0, fmt.Errorf("%w: length %d, need at least %d", ErrShortFrame, length, minLength)
	}
	return lengthSize + int(length), nil
}

// Decode decodes one frame from the start of b and returns it with the number
// of bytes it used. When b holds only part of a frame, Decode returns n == 0
// and a nil error: the caller reads more and calls again. The frame's Payload
// aliases b.
//
// maxFrame limits the length field (kind, tag and payload); maxFrame <= 0
// means DefaultMaxFrame. A larger length field is an error wrapping
// ErrFrameTooLarge, reported as soon as the four length bytes are present; a
// length below 3 is an error wrapping ErrShortFrame. Either error means the
// stream cannot be resynchronized and the connection should be closed.
func Decode(b []byte, maxFrame int) (f Frame, n int, err error) {
	if len(b) < lengthSize {
		return Frame{}, 0, nil
	}
	total, err := checkLength(binary.BigEndian.Uint32(b), effectiveMax(maxFrame))
	if err != nil {
		return Frame{}, 0, err
	}
	if len(b) < total {
		return Frame{}, 0, nil
	}
	return frameAt(b[:total:total]), total, nil
}

// frameAt builds the Frame held by b, a whole validated frame.
func frameAt(b []byte) Frame {
	return Frame{
		Kind:    Kind(b[lengthSize]),
		Tag:     binary.BigEndian.Uint16(b[lengthSize+1:]),
		Payload: b[HeaderSize:],
	}
}

// Reader reads frames from a stream. It reads into one internal buffer and
// returns as many frames from each read as the read delivered, so a burst of
// small frames costs one read call and no allocation. A frame that spans
// reads is completed by moving it to the front of the buffer, growing the
// buffer when the frame is larger than it.
//
// The buffer starts at 32 KiB (or lengthSize+maxFrame if smaller) and grows
// only for a frame that does not fit, only after the frame's length has been
// checked against the limit, and only as the frame's bytes arrive: it at
// most doubles when it is full, never beyond lengthSize+maxFrame. A peer
// that announces a large frame and sends nothing more costs nothing beyond
// the initial buffer; memory follows the bytes actually received. The
// buffer keeps its largest size for the Reader's life.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	src        io.Reader
	max        int    // effective frame limit
	buf        []byte // allocated on the first Next
	start, end int    // buf[start:end] is read but not yet returned
	srcErr     error  // error from src, returned once buffered frames are out
	err        error  // sticky error returned by Next
}

// NewReader returns a Reader of frames from r whose length fields are at
// most maxFrame (maxFrame <= 0 means DefaultMaxFrame). It allocates nothing
// until the first call to Next.
func NewReader(r io.Reader, maxFrame int) *Reader {
	return &Reader{src: r, max: effectiveMax(maxFrame)}
}

// SetMaxFrame changes the limit on length fields for the frames Next
// returns from now on (maxFrame <= 0 means DefaultMaxFrame). A link raises
// it from MaxHandshakeFrame to its configured limit once the peer is
// authenticated. A buffer already made for a lower limit grows to what
// NewReader would have made for the new one (at most 32 KiB), so that a
// read takes many frames at once, not one or two.
func (r *Reader) SetMaxFrame(maxFrame int) {
	r.max = effectiveMax(maxFrame)
	if r.buf == nil {
		return
	}
	if size := min(initialReaderBuffer, lengthSize+r.max); len(r.buf) < size {
		nb := make([]byte, size)
		r.end = copy(nb, r.buf[r.start:r.end])
		r.start = 0
		r.buf = nb
	}
}

// Buffered returns the number of bytes read from the stream but not yet
// returned as frames.
func (r *Reader) Buffered() int { return r.end - r.start }

// Next returns the next frame. Its Payload aliases the Reader's buffer and is
// valid only until the next call to Next; a caller that keeps it copies it.
//
// Errors: io.EOF when the stream ends cleanly at a frame boundary;
// io.ErrUnexpectedEOF when it ends inside a frame; an error wrapping
// ErrFrameTooLarge or ErrShortFrame for an invalid length field; the
// stream's own read errors as they are (returned only after the frames read
// before them); io.ErrNoProgress when the stream keeps returning no data and
// no error. After an error, Next returns the same error on every call.
func (r *Reader) Next() (Frame, error) {
	if r.err != nil {
		return Frame{}, r.err
	}
	if r.buf == nil {
		r.buf = make([]byte, min(initialReaderBuffer, lengthSize+r.max))
	}
	empty := 0
	for {
		// need is how many bytes, from start, must be buffered before the
		// next step: the length field, then the whole frame.
		need := lengthSize
		if avail := r.end - r.start; avail >= lengthSize {
			total, err := checkLength(binary.BigEndian.Uint32(r.buf[r.start:]), r.max)
			if err != nil {
				return r.fail(err)
			}
			if avail >= total {
				f := frameAt(r.buf[r.start : r.start+total : r.start+total])
				r.start += total
				if r.start == r.end {
					r.start, r.end = 0, 0
				}
				return f, nil
			}
			need = total
		}
		if r.srcErr != nil {
			if r.srcErr == io.EOF {
				if r.start == r.end {
					return r.fail(io.EOF)
				}
				return r.fail(io.ErrUnexpectedEOF)
			}
			return r.fail(r.srcErr)
		}
		r.makeRoom(need)
		n, err := r.src.Read(r.buf[r.end:])
		if n < 0 || n > len(r.buf)-r.end {
			return r.fail(fmt.Errorf("protocol: reader returned invalid count %d for a %d-byte buffer", n, len(r.buf)-r.end))
		}
		r.end += n
		if err != nil {
			r.srcErr = err
			continue
		}
		if n == 0 {
			empty++
			if empty >= maxEmptyReads {
				return r.fail(io.ErrNoProgress)
			}
			continue
		}
		empty = 0
	}
}

// makeRoom makes room to read more of the need bytes, from start, that the
// next step waits for. need is at most lengthSize+max (checked by the
// caller) and more than end-start. Buffered bytes move to the front when
// that frees room; the buffer grows only when it is full, to at most twice
// its size, so it never runs ahead of what the peer has sent.
func (r *Reader) makeRoom(need int) {
	if len(r.buf)-r.start >= need {
		return
	}
	if r.start > 0 {
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
	}
	if r.end < len(r.buf) {
		return
	}
	nb := make([]byte, min(need, max(2*len(r.buf), minGrowth)))
	copy(nb, r.buf[:r.end])
	r.buf = nb
}

// fail records err as the Reader's sticky error and returns it.
func (r *Reader) fail(err error) (Frame, error) {
	r.err = err
	r.srcErr = nil
	return Frame{}, err
}

// httpMethods are the first four bytes of the HTTP requests a server port may
// receive from a misdirected client.
var httpMethods = [...]string{
	"GET ", "POST", "PUT ", "HEAD", "OPTI", "DELE", "PATC", "CONN", "TRAC",
	"PRI ", // HTTP/2 connection preface
}

// LooksLikeHTTP reports whether b, the first bytes a server port received,
// starts with an HTTP method token, meaning an HTTP or WebSocket client
// reached a server port. It needs at least four bytes and returns false for
// fewer. A valid link frame never matches: as a length field, each of these
// tokens declares more than a gigabyte.
func LooksLikeHTTP(b []byte) bool {
	if len(b) < 4 {
		return false
	}
	head := string(b[:4]) // no allocation: the compiler compares in place
	for _, m := range httpMethods {
		if head == m {
			return true
		}
	}
	return false
}
