package openworld

import (
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/plugins"
)

// id is a candidate for Owner with only an ID.
type id string

func (i id) ID() string { return string(i) }

func TestOwnerIsStableAndMovesOnlyLostRegions(t *testing.T) {
	const regions = 256
	all := []id{"world-1", "world-2", "world-3"}
	reversed := []id{"world-3", "world-2", "world-1"}
	without2 := []id{"world-1", "world-3"}
	owned := map[id]int{}
	for r := 0; r < regions; r++ {
		o := Owner(all, r)
		owned[o]++
		if got := Owner(reversed, r); got != o {
			t.Fatalf("region %d: owner %s, or %s when the list is reversed", r, o, got)
		}
		got := Owner(without2, r)
		if o != "world-2" && got != o {
			t.Errorf("region %d moved from %s to %s when world-2 left", r, o, got)
		}
		if got == "world-2" {
			t.Errorf("region %d owned by world-2, which left", r)
		}
	}
	for _, s := range all {
		if owned[s] == 0 {
			t.Errorf("%s owns none of %d regions: %v", s, regions, owned)
		}
	}
	if Owner([]plugins.RemoteServer(nil), 1) != nil {
		t.Error("Owner of no candidates is not nil")
	}
}

func TestRegion(t *testing.T) {
	for _, c := range []struct {
		x       int32
		regions int
		want    int
	}{
		{0, 64, 0}, {MapSize - 1, 64, 63}, {MapSize / 2, 64, 32}, {-5, 64, 0}, {MapSize + 9, 64, 63},
		{MapSize - 1, 1, 0}, {MapSize - 1, MaxRegions, MaxRegions - 1},
	} {
		if got := Region(c.x, c.regions); got != c.want {
			t.Errorf("Region(%d, %d) = %d, want %d", c.x, c.regions, got, c.want)
		}
	}
	if !Near(3, 4) || !Near(4, 3) || !Near(5, 5) || Near(3, 5) || Near(9, 1) {
		t.Error("Near is not same-or-adjacent")
	}
}

func TestCodecs(t *testing.T) {
	ref := ClientRef{Server: "client-1", ID: 1<<40 | 7}
	other := ClientRef{Server: "client-2", ID: 3}
	step := Step{Point: Point{-3, 4000}, Stamp: 1 << 60}
	if got, err := ParseStep(AppendStep(nil, step)); err != nil || got != step {
		t.Errorf("step round trip: %+v, %v", got, err)
	}
	w := Welcome{Point: Point{1, 2}, Name: "ålice"}
	if got, err := ParseWelcome(AppendWelcome(nil, w)); err != nil || got != w {
		t.Errorf("welcome round trip: %+v, %v", got, err)
	}
	pos := Position{Player: ref, Point: Point{10, 20}, Region: 4095, Stamp: 99}
	if got, err := ParsePosition(AppendPosition(nil, pos)); err != nil || got != pos {
		t.Errorf("moved round trip: %+v, %v", got, err)
	}
	view := []Position{{Player: ref, Point: Point{1, 1}, Region: 1}, {Player: other, Point: Point{2, 2}, Region: 2}}
	vb, err := AppendView(nil, view)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseView(vb); err != nil || len(got) != 2 || got[0] != view[0] || got[1] != view[1] {
		t.Errorf("view round trip: %+v, %v", got, err)
	}
	if got, err := ParseView([]byte{0, 0}); err != nil || len(got) != 0 {
		t.Errorf("empty view: %+v, %v", got, err)
	}
	if _, err := ParseView([]byte{0xFF, 0xFF, 1, 2, 3}); !errors.Is(err, ErrBadMessage) {
		t.Errorf("view claiming 65535 entries in 3 bytes: %v", err)
	}
	if got, err := ParseRef(AppendRef(nil, ref)); err != nil || got != ref {
		t.Errorf("gone round trip: %+v, %v", got, err)
	}
	line := ChatLine{From: ref, Name: "bob", Text: "hi there ☺"}
	if got, err := ParseChatLine(AppendChatLine(nil, line)); err != nil || got != line {
		t.Errorf("chat line round trip: %+v, %v", got, err)
	}
	for _, u := range []Update{{Player: ref, Point: Point{5, 6}, Owner: true, Stamp: 8}, {Player: other, Point: Point{7, 8}}} {
		if got, err := ParseUpdate(AppendUpdate(nil, u)); err != nil || got != u {
			t.Errorf("update round trip: %+v, %v", got, err)
		}
	}
	for _, l := range []Leave{{Player: ref, Handover: true}, {Player: other}} {
		if got, err := ParseLeave(AppendLeave(nil, l)); err != nil || got != l {
			t.Errorf("leave round trip: %+v, %v", got, err)
		}
	}
	pg := Ping{Player: ref, Stamp: 12}
	if got, err := ParsePing(AppendPing(nil, pg)); err != nil || got != pg {
		t.Errorf("ping round trip: %+v, %v", got, err)
	}
	if got, err := ParseStamp(AppendStamp(nil, 77)); err != nil || got != 77 {
		t.Errorf("stamp round trip: %d, %v", got, err)
	}
	if n, err := ParseMap(AppendMap(nil, 64)); err != nil || n != 64 {
		t.Errorf("map round trip: %d, %v", n, err)
	}
	if _, err := ParseMap(AppendMap(nil, 0)); !errors.Is(err, ErrBadMessage) {
		t.Errorf("map with 0 regions: %v", err)
	}

	// Every truncation of a valid message, and every message with a byte
	// too many, is refused, never a panic.
	for name, c := range map[string]struct {
		full  []byte
		parse func([]byte) error
	}{
		"step":      {AppendStep(nil, step), func(p []byte) error { _, err := ParseStep(p); return err }},
		"welcome":   {AppendWelcome(nil, w), func(p []byte) error { _, err := ParseWelcome(p); return err }},
		"moved":     {AppendPosition(nil, pos), func(p []byte) error { _, err := ParsePosition(p); return err }},
		"view":      {vb, func(p []byte) error { _, err := ParseView(p); return err }},
		"gone":      {AppendRef(nil, ref), func(p []byte) error { _, err := ParseRef(p); return err }},
		"update":    {AppendUpdate(nil, Update{Player: ref}), func(p []byte) error { _, err := ParseUpdate(p); return err }},
		"leave":     {AppendLeave(nil, Leave{Player: ref}), func(p []byte) error { _, err := ParseLeave(p); return err }},
		"ping":      {AppendPing(nil, pg), func(p []byte) error { _, err := ParsePing(p); return err }},
		"stamp":     {AppendStamp(nil, 1), func(p []byte) error { _, err := ParseStamp(p); return err }},
		"map":       {AppendMap(nil, 8), func(p []byte) error { _, err := ParseMap(p); return err }},
		"chat line": {AppendChatLine(nil, ChatLine{From: ref, Name: "n", Text: "t"}), func(p []byte) error { _, err := ParseChatLine(p); return err }},
	} {
		for n := 0; n < len(c.full); n++ {
			if err := c.parse(c.full[:n]); !errors.Is(err, ErrBadMessage) {
				t.Errorf("%s truncated to %d bytes: %v, want ErrBadMessage", name, n, err)
			}
		}
		if name == "chat line" {
			continue // its text runs to the end
		}
		if err := c.parse(append(c.full[:len(c.full):len(c.full)], 0)); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s with a byte too many: %v, want ErrBadMessage", name, err)
		}
	}
}

func TestTextChecks(t *testing.T) {
	for _, c := range []struct {
		text string
		ok   bool
	}{
		{"hello", true}, {"héllo ☺", true}, {strings.Repeat("a", MaxChatBytes), true},
		{"", false}, {strings.Repeat("a", MaxChatBytes+1), false}, {"bell\a", false}, {"\xff\xfe", false}, {"new\nline", false},
	} {
		if err := CheckChat(c.text); (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrBadMessage)) {
			t.Errorf("CheckChat(%q) = %v, want ok %v", c.text, err, c.ok)
		}
	}
	if err := CheckName(strings.Repeat("n", MaxNameBytes+1)); !errors.Is(err, ErrBadMessage) {
		t.Errorf("long name: %v", err)
	}
	if _, err := ParseChatLine(AppendChatLine(nil, ChatLine{Name: "x", Text: "bad\x00"})); !errors.Is(err, ErrBadMessage) {
		t.Errorf("chat line with a NUL: %v", err)
	}
}

func TestSettings(t *testing.T) {
	provision := func(name, settings string) (plugins.Plugin, error) {
		var n yaml.Node
		if settings != "" {
			if err := yaml.Unmarshal([]byte(settings), &n); err != nil {
				t.Fatal(err)
			}
		}
		return plugins.Provision(plugins.Spec{Name: name, Settings: n, File: "cluster.yaml", Line: 3})
	}
	p, err := provision("world", "")
	if err != nil || p.(*World).Regions != DefaultRegions {
		t.Errorf("world without settings: %+v, %v", p, err)
	}
	p, err = provision("world", "regions: 4096")
	if err != nil || p.(*World).Regions != 4096 {
		t.Errorf("world regions 4096: %+v, %v", p, err)
	}
	if p, err := provision("gateway", ""); err != nil {
		t.Errorf("gateway without settings: %+v, %v", p, err)
	}
	for _, c := range []struct{ name, settings, want string }{
		{"world", "regions: 0", "regions is 0"},
		{"world", "regions: 4097", "regions is 4097"},
		{"world", "region: 8", `unknown key "region"`},
		{"gateway", "players: 2", `unknown key "players"`},
		{"chat", "rooms: 3", `unknown key "rooms"`},
	} {
		_, err := provision(c.name, c.settings)
		if !errors.Is(err, plugins.ErrSettings) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "cluster.yaml:") {
			t.Errorf("%s %q: %v, want an ErrSettings naming cluster.yaml and %q", c.name, c.settings, err, c.want)
		}
	}
}
