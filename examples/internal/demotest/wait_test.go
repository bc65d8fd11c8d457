package demotest

import (
	"regexp"
	"testing"
)

func TestCountAbove(t *testing.T) {
	re := regexp.MustCompile(`total (\d+)`)
	for out, want := range map[string]bool{
		"":                   false,
		"total 0":            false,
		"total 0\ntotal 0":   false,
		"total 0\ntotal 12":  true,
		"total 3":            true,
		"no total posted":    false,
		"total 0 | total 00": false,
	} {
		if got := CountAbove(re, out); got != want {
			t.Errorf("CountAbove(%q) = %v, want %v", out, got, want)
		}
	}
}
