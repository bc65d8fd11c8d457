package protocol

import (
	"bytes"
	"errors"
	"testing"
)

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
