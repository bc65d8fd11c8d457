package wire

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestDecoderFirstFailureSticks(t *testing.T) {
	b := AppendStr8(nil, "héllo")
	b = append(b, 0, 7)
	d := NewDecoder(b, "test")
	if s := d.Str8("name"); s != "héllo" {
		t.Fatalf("Str8 = %q", s)
	}
	if v := d.U32("value"); v != 0 || d.Err() == nil {
		t.Fatalf("U32 past the end = %d, %v", v, d.Err())
	}
	first := d.Err()
	if d.U8("more") != 0 || d.Err() != first {
		t.Fatal("a later read replaced the first error")
	}
	if err := d.Finish(); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "test: value truncated") {
		t.Fatalf("Finish = %v", err)
	}
}

func TestDecoderRejects(t *testing.T) {
	cases := map[string]func(d *Decoder){
		"trailing":     func(d *Decoder) { d.U8("x") },
		"invalid utf8": func(d *Decoder) { d.Text(2, "s") },
		"over limit":   func(d *Decoder) { d.Str16("s", 1) },
		"unknown flag": func(d *Decoder) { d.Flags(0x01) },
		"huge count":   func(d *Decoder) { d.Check(1<<20, 4, "items") },
	}
	for name, read := range cases {
		d := NewDecoder([]byte{0x02, 0xff, 0xfe}, name)
		read(&d)
		if err := d.Finish(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestAppendStr8CutsAtARune(t *testing.T) {
	s := strings.Repeat("é", 200) // 400 bytes
	b := AppendStr8(nil, s)
	if int(b[0]) != len(b)-1 || b[0] > MaxStr8 || b[0]%2 != 0 {
		t.Fatalf("prefix %d of %d bytes", b[0], len(b)-1)
	}
	d := NewDecoder(b, "s")
	if got := d.Str8("s"); !strings.HasPrefix(s, got) || d.Finish() != nil {
		t.Fatalf("decoded %d bytes: %v", len(got), d.Finish())
	}
}

// TestFieldNamesJoinedOnlyForErrors: a well-formed payload's fields decode
// without allocating for their names; a malformed one's error still names
// the whole field.
func TestFieldNamesJoinedOnlyForErrors(t *testing.T) {
	b := AppendStr8(nil, "srv")
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 9, 0, 2)
	allocs := testing.AllocsPerRun(100, func() {
		d := NewDecoder(b, "test")
		d.Str8Of("uploader", " server")
		d.U64Of("uploader", " id")
		d.U16Of("keys", " count")
		if d.Err() != nil {
			t.Fatal(d.Err())
		}
	})
	// The one allocation is the decoded string (-race allocates more).
	if allocs > 1 && !raceEnabled {
		t.Fatalf("%v allocations per decode, want at most 1", allocs)
	}
	for name, read := range map[string]func(d *Decoder){
		"uploader server truncated":        func(d *Decoder) { d.Str8Of("uploader", " server") },
		"uploader server length truncated": func(d *Decoder) { d.U8("x"); d.Str8Of("uploader", " server") },
		"uploader id truncated":            func(d *Decoder) { d.U64Of("uploader", " id") },
		"keys count truncated":             func(d *Decoder) { d.U16Of("keys", " count") },
	} {
		d := NewDecoder([]byte{9}, "test")
		read(&d)
		if err := d.Err(); err == nil || !strings.Contains(err.Error(), "test: "+name) {
			t.Errorf("want %q, got %v", name, err)
		}
	}
}

// TestStringsReused: with a Strings, bytes decoded before come back as the
// same string without allocating; new bytes are still checked for UTF-8
// and copied; past MaxStrings it starts over and stays correct.
func TestStringsReused(t *testing.T) {
	var s Strings
	b := AppendStr8(AppendStr8(nil, "players/7"), "srv-a")
	decode := func() (string, string) {
		d := NewDecoder(b, "test")
		d.ReuseStrings(&s)
		x, y := d.Str8("key"), d.Str8("server")
		if err := d.Finish(); err != nil {
			t.Fatal(err)
		}
		return x, y
	}
	if x, y := decode(); x != "players/7" || y != "srv-a" {
		t.Fatalf("decoded %q %q", x, y)
	}
	allocs := testing.AllocsPerRun(100, func() { decode() })
	if allocs != 0 && !raceEnabled {
		t.Fatalf("%v allocations per decode of kept strings, want 0", allocs)
	}
	// The decoded string does not alias the input.
	in := AppendStr8(nil, "abc")
	d := NewDecoder(in, "test")
	d.ReuseStrings(&s)
	got := d.Str8("x")
	in[1] = 'z'
	if got != "abc" {
		t.Fatalf("decoded string changed with its input: %q", got)
	}
	// Invalid UTF-8 is still rejected.
	d = NewDecoder(AppendStr8(nil, "\xff\xfe"), "test")
	d.ReuseStrings(&s)
	if d.Str8("x"); d.Err() == nil {
		t.Fatal("invalid UTF-8 accepted")
	}
	// Many distinct strings: bounded, and each decodes to itself.
	for i := range 3 * MaxStrings {
		want := fmt.Sprintf("k%d", i)
		d := NewDecoder(AppendStr8(nil, want), "test")
		d.ReuseStrings(&s)
		if got := d.Str8("x"); got != want {
			t.Fatalf("decoded %q, want %q", got, want)
		}
		if len(s.m) > MaxStrings {
			t.Fatalf("%d strings kept, limit %d", len(s.m), MaxStrings)
		}
	}
}
