package protocol

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestClientPayloadsRoundTrip(t *testing.T) {
	w := ClientWelcome{ServerID: "client-1", ClientID: 1<<40 | 7, MaxMessage: 4096}
	var w2 ClientWelcome
	if err := w2.Decode(w.AppendTo(nil)); err != nil || w2 != w {
		t.Fatalf("welcome: %+v %v", w2, err)
	}
	id, p, err := DecodeClientSend(AppendClientSend(nil, 99, []byte("hi")))
	if err != nil || id != 99 || string(p) != "hi" {
		t.Fatalf("send: %d %q %v", id, p, err)
	}
	ids := []uint64{1, 2, 1 << 60}
	got, p, err := DecodeClientMulti(AppendClientMulti(nil, ids, []byte("x")), nil)
	if err != nil || !slices.Equal(got, ids) || string(p) != "x" {
		t.Fatalf("multi: %v %q %v", got, p, err)
	}
	got, err = DecodeClientGone(AppendClientGone(nil, ids), nil)
	if err != nil || !slices.Equal(got, ids) {
		t.Fatalf("gone: %v %v", got, err)
	}
	f, err := DecodeWS(AppendWS(nil, KindUser, 513, []byte("abc")))
	if err != nil || f.Kind != KindUser || f.Tag != 513 || string(f.Payload) != "abc" {
		t.Fatalf("ws: %+v %v", f, err)
	}
}

func TestClientPayloadsRejectTruncation(t *testing.T) {
	full := [][]byte{
		(&ClientWelcome{ServerID: "s", ClientID: 1, MaxMessage: 2}).AppendTo(nil),
		AppendClientGone(nil, []uint64{1, 2}),
	}
	for _, b := range full {
		for n := 0; n < len(b); n++ {
			var w ClientWelcome
			errW := w.Decode(b[:n])
			_, errG := DecodeClientGone(b[:n], nil)
			if errW == nil && errG == nil {
				t.Fatalf("prefix %d of %x decoded", n, b)
			}
		}
	}
	if _, _, err := DecodeClientSend([]byte{1, 2, 3}); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
	// A count that promises more IDs than the bytes hold must fail before
	// allocating for them.
	if _, _, err := DecodeClientMulti([]byte{0xff, 0xff, 0, 0}, nil); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
	if _, err := DecodeWS([]byte{1, 2}); !errors.Is(err, ErrShortFrame) {
		t.Fatal(err)
	}
}

func FuzzClientPayloads(f *testing.F) {
	f.Add((&ClientWelcome{ServerID: "s", ClientID: 1, MaxMessage: 2}).AppendTo(nil))
	f.Add(AppendClientMulti(nil, []uint64{1, 2}, []byte("p")))
	f.Add(AppendClientSend(nil, 5, []byte("p")))
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var w ClientWelcome
		if w.Decode(b) == nil {
			var w2 ClientWelcome
			if err := w2.Decode(w.AppendTo(nil)); err != nil || w2 != w {
				t.Fatalf("welcome re-decode: %v", err)
			}
		}
		if ids, p, err := DecodeClientMulti(b, nil); err == nil {
			if !bytes.Equal(AppendClientMulti(nil, ids, p), b) {
				t.Fatal("multi does not re-encode to its input")
			}
		}
		if ids, err := DecodeClientGone(b, nil); err == nil {
			if !bytes.Equal(AppendClientGone(nil, ids), b) {
				t.Fatal("gone does not re-encode to its input")
			}
		}
		if id, p, err := DecodeClientSend(b); err == nil && !bytes.Equal(AppendClientSend(nil, id, p), b) {
			t.Fatal("send does not re-encode")
		}
		if fr, err := DecodeWS(b); err == nil && !bytes.Equal(AppendWS(nil, fr.Kind, fr.Tag, fr.Payload), b) {
			t.Fatal("ws does not re-encode")
		}
	})
}

func TestMoveRoundTripAndLimits(t *testing.T) {
	long := "ws://h/" + strings.Repeat("p", MaxMoveURL)
	urls := []string{"ws://a:1/", "bad \xff url", long, ""}
	for i := 0; i < 300; i++ {
		urls = append(urls, "ws://b/")
	}
	in := Move{Reason: ReasonDraining, URLs: urls}
	var out Move
	if err := out.Decode(in.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	// The empty, invalid and too long URLs are left out, the count stops at 255.
	if out.Reason != ReasonDraining || len(out.URLs) != MaxMoveURLs || out.URLs[0] != "ws://a:1/" || out.URLs[1] != "ws://b/" {
		t.Fatalf("decoded %v URLs, first %q", len(out.URLs), out.URLs[:3])
	}
	var empty Move
	if err := empty.Decode((&Move{Reason: ReasonDraining}).AppendTo(nil)); err != nil || empty.URLs != nil {
		t.Fatalf("%+v %v", empty, err)
	}
	keep := Move{Reason: ReasonKicked, URLs: []string{"x"}}
	if err := keep.Decode([]byte{0, 25, 2, 0, 1, 'a'}); err == nil || keep.Reason != ReasonKicked || keep.URLs[0] != "x" {
		t.Fatalf("a truncated Move decoded or changed the value: %+v %v", keep, err)
	}
	if ClientKindString(KindClientMove) != "client-move" || KindClientSend.String() != "client-send" || ReasonDraining.String() != "draining" {
		t.Fatal("names")
	}
}
