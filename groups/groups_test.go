package groups_test

import (
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/groups"
)

// system builds a System from name -> connectsTo, in the given order.
func system(order []string, connects map[string][]string) *config.System {
	s := &config.System{System: "t", Secret: "0123456789abcdef"}
	for _, n := range order {
		vis := config.Internal
		if n == "client" {
			vis = config.External
		}
		s.Groups = append(s.Groups, config.Group{Name: n, Visibility: vis, ConnectsTo: connects[n]})
	}
	return s
}

func TestTopology(t *testing.T) {
	tests := []struct {
		name     string
		order    []string
		connects map[string][]string
		up, down map[string][]string
		wantOrd  []string
		edges    [][2]string
	}{
		{
			name:     "example",
			order:    []string{"client", "world", "social"},
			connects: map[string][]string{"client": {"world", "social"}},
			up:       map[string][]string{"client": {"social", "world"}},
			down:     map[string][]string{"world": {"client"}, "social": {"client"}},
			wantOrd:  []string{"social", "world", "client"},
			edges:    [][2]string{{"client", "social"}, {"client", "world"}},
		},
		{
			name:  "chain and diamond",
			order: []string{"client", "world", "cloud", "auth", "social"},
			connects: map[string][]string{
				"client": {"world", "social", "auth"},
				"world":  {"cloud"},
				"social": {"cloud", "auth"},
				"auth":   {"cloud"},
			},
			up: map[string][]string{
				"client": {"auth", "social", "world"},
				"world":  {"cloud"},
				"social": {"auth", "cloud"},
				"auth":   {"cloud"},
			},
			down: map[string][]string{
				"cloud":  {"auth", "social", "world"},
				"auth":   {"client", "social"},
				"social": {"client"},
				"world":  {"client"},
			},
			wantOrd: []string{"cloud", "auth", "social", "world", "client"},
			edges: [][2]string{
				{"auth", "cloud"}, {"client", "auth"}, {"client", "social"}, {"client", "world"},
				{"social", "auth"}, {"social", "cloud"}, {"world", "cloud"},
			},
		},
		{
			name:    "no links",
			order:   []string{"b", "a"},
			wantOrd: []string{"a", "b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sys := system(tt.order, tt.connects)
			if err := sys.Validate(); err != nil {
				t.Fatalf("test system invalid: %v", err)
			}
			top := groups.New(sys)
			for _, g := range tt.order {
				if got := top.Upstream(g); !reflect.DeepEqual(got, tt.up[g]) {
					t.Errorf("Upstream(%s) = %v, want %v", g, got, tt.up[g])
				}
				if got := top.Downstream(g); !reflect.DeepEqual(got, tt.down[g]) {
					t.Errorf("Downstream(%s) = %v, want %v", g, got, tt.down[g])
				}
				for _, h := range tt.order {
					dials := slices.Contains(tt.connects[h], g)
					if got := top.Accepts(g, h); got != dials {
						t.Errorf("Accepts(%s, %s) = %v, want %v", g, h, got, dials)
					}
					related := dials || slices.Contains(tt.connects[g], h)
					if got := top.Related(g, h); got != related {
						t.Errorf("Related(%s, %s) = %v, want %v", g, h, got, related)
					}
				}
			}
			order := top.Order()
			if !reflect.DeepEqual(order, tt.wantOrd) {
				t.Errorf("Order = %v, want %v", order, tt.wantOrd)
			}
			// Every group comes after every group it dials.
			for i, g := range order {
				for _, u := range top.Upstream(g) {
					if j := slices.Index(order, u); j > i {
						t.Errorf("Order: %s (at %d) before its upstream %s (at %d)", g, i, u, j)
					}
				}
			}
			if got := top.Edges(); !reflect.DeepEqual(got, tt.edges) {
				t.Errorf("Edges = %v, want %v", got, tt.edges)
			}
		})
	}
}

func TestUnknownGroup(t *testing.T) {
	top := groups.New(system([]string{"client", "world"}, map[string][]string{"client": {"world"}}))
	if top.Upstream("nope") != nil || top.Downstream("nope") != nil || top.Accepts("nope", "client") || top.Related("nope", "world") {
		t.Error("an unknown group has links")
	}
}

func TestResultsAreCopies(t *testing.T) {
	top := groups.New(system([]string{"client", "a", "b"}, map[string][]string{"client": {"a", "b"}}))
	top.Upstream("client")[0] = "x"
	top.Downstream("a")[0] = "x"
	top.Order()[0] = "x"
	top.Edges()[0] = [2]string{"x", "y"}
	if got := top.Upstream("client"); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("Upstream changed: %v", got)
	}
	if got := top.Downstream("a"); !reflect.DeepEqual(got, []string{"client"}) {
		t.Errorf("Downstream changed: %v", got)
	}
	if got := top.Order(); !reflect.DeepEqual(got, []string{"a", "b", "client"}) {
		t.Errorf("Order changed: %v", got)
	}
	if got := top.Edges(); got[0] != [2]string{"client", "a"} {
		t.Errorf("Edges changed: %v", got)
	}
}

// TestUnvalidated: New tolerates a system that failed validation.
func TestUnvalidated(t *testing.T) {
	sys := system([]string{"a", "b", "c"}, map[string][]string{
		"a": {"b", "b", "a", "ghost"},
		"b": {"a"},
	})
	top := groups.New(sys)
	if got := top.Upstream("a"); !reflect.DeepEqual(got, []string{"b"}) {
		t.Errorf("Upstream(a) = %v", got)
	}
	if got := top.Order(); !reflect.DeepEqual(got, []string{"c", "a", "b"}) {
		t.Errorf("Order = %v, want c first, then the cycle by name", got)
	}
}

func TestExampleFile(t *testing.T) {
	data, err := os.ReadFile("../cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sys, err := config.Parse("../cluster.yaml", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	top := groups.New(sys)
	if got := top.Order(); !reflect.DeepEqual(got, []string{"cloud", "social", "world", "client"}) {
		t.Errorf("Order = %v", got)
	}
}
