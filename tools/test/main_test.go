package main

import (
	"slices"
	"testing"
)

func TestModulePatterns(t *testing.T) {
	cases := []struct {
		patterns []string
		want     map[string][]string
	}{
		{[]string{"./..."}, map[string][]string{".": {"./..."}, "examples/stats": {"./..."}, "bench": {"./..."}}},
		{[]string{"./cluster/"}, map[string][]string{".": {"./cluster"}}},
		{[]string{"./bench/cloud/"}, map[string][]string{"bench": {"./cloud"}}},
		{[]string{"./bench/"}, map[string][]string{"bench": {"."}}},
		{[]string{"./examples/..."}, map[string][]string{".": {"./examples/..."}, "examples/stats": {"./..."}}},
		{[]string{"./examples/stats/...", "./plugins/..."}, map[string][]string{".": {"./plugins/..."}, "examples/stats": {"./..."}}},
		{[]string{"github.com/cloudrift/cloudrift/bench/clients"}, map[string][]string{"bench": {"github.com/cloudrift/cloudrift/bench/clients"}}},
		{[]string{"github.com/cloudrift/cloudrift/..."}, map[string][]string{
			".":              {"github.com/cloudrift/cloudrift/..."},
			"examples/stats": {"github.com/cloudrift/cloudrift/examples/stats/..."},
			"bench":          {"github.com/cloudrift/cloudrift/bench/..."},
		}},
	}
	for _, c := range cases {
		for _, mod := range modules {
			if got := modulePatterns(mod, c.patterns); !slices.Equal(got, c.want[mod]) {
				t.Errorf("modulePatterns(%q, %q) = %q, want %q", mod, c.patterns, got, c.want[mod])
			}
		}
	}
}
