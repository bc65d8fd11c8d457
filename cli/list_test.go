package cli

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestListFlag(t *testing.T) {
	var l List
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&l, "url", "")
	if err := fs.Parse([]string{"-url", "a, b,,", "-url", " c "}); err != nil {
		t.Fatal(err)
	}
	if want := (List{"a", "b", "c"}); !slices.Equal(l, want) {
		t.Fatalf("got %q, want %q", l, want)
	}
	if l.String() != "a,b,c" {
		t.Fatalf("String %q", l.String())
	}
}
