package yamlx_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/internal/yamlx"
)

func node(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Content[0]
}

func TestFieldsMergeAndRepeats(t *testing.T) {
	n := node(t, "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n  z: 4\n  z: 5\n")
	fs, probs := yamlx.Fields(n.Content[3])
	var keys []string
	for _, f := range fs {
		keys = append(keys, f.Key.Value+"="+f.Val.Value)
	}
	if got := strings.Join(keys, ","); got != "y=3,z=4,x=1" {
		t.Errorf("fields = %s, want explicit keys first and winning over the merge", got)
	}
	if len(probs) != 1 || probs[0].Node.Line != 6 || !strings.Contains(probs[0].Msg, `key "z" repeated (first at line 5)`) {
		t.Errorf("problems = %+v", probs)
	}
	if _, probs := yamlx.Fields(node(t, "[1, 2]")); len(probs) != 1 || probs[0].Msg != "want a mapping, got a list" {
		t.Errorf("list: %+v", probs)
	}
	if fs, probs := yamlx.Fields(node(t, "~")); fs != nil || probs != nil {
		t.Errorf("null: %v %v", fs, probs)
	}
}

type settings struct {
	Name   string        `yaml:"name"`
	Tick   time.Duration `yaml:"tick"`
	Limits struct {
		MaxBytes int `yaml:"maxBytes"`
	} `yaml:"limits"`
	Tags map[string]struct {
		Weight int `yaml:"weight"`
	} `yaml:"tags"`
}

func TestDecodeStrict(t *testing.T) {
	var s settings
	src := "base: &b {name: n}\nv:\n  <<: *b\n  tick: 2s\n  limits: {maxBytes: 9}\n  tags: {a: {weight: 1}}\n"
	if err := yamlx.DecodeStrict(node(t, src).Content[3], &s); err != nil {
		t.Fatal(err)
	}
	if s.Name != "n" || s.Tick != 2*time.Second || s.Limits.MaxBytes != 9 || s.Tags["a"].Weight != 1 {
		t.Errorf("decoded %+v", s)
	}
	for _, c := range []struct{ src, want string }{
		{"nmae: x\n", `line 1: unknown key "nmae" (did you mean "name"?) (known: limits, name, tags, tick)`},
		{"limits:\n  maxbytes: 1\n", `line 2: unknown key "maxbytes" in limits (did you mean "maxBytes"?)`},
		{"tags:\n  a: {wieght: 1}\n", `line 2: unknown key "wieght" in tags.a (did you mean "weight"?)`},
		{"name: a\nname: b\n", `line 2: key "name" repeated (first at line 1)`},
		{"tick: 5\n", "line 1"},
	} {
		var s settings
		if err := yamlx.DecodeStrict(node(t, c.src), &s); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want %q", c.src, err, c.want)
		}
	}
	if err := yamlx.DecodeStrict(node(t, "a: 1"), settings{}); !errors.Is(err, yamlx.ErrNotPointer) {
		t.Errorf("non-pointer: %v", err)
	}
}

func TestSyntaxErrorLines(t *testing.T) {
	for _, c := range []struct {
		src  string
		line int
	}{
		{"a: 1\nb: [1, 2\nc: 3\n", 2}, // where the unclosed list starts
		{"a: *nope\n", 1},
		{"\ta: 1\n", 1},
	} {
		var n yaml.Node
		err := yaml.Unmarshal([]byte(c.src), &n)
		if err == nil {
			t.Fatalf("%q parsed", c.src)
		}
		if line, msg := yamlx.SyntaxError(err, []byte(c.src)); line != c.line || strings.HasPrefix(msg, "yaml:") {
			t.Errorf("%q: line %d %q, want line %d", c.src, line, msg, c.line)
		}
	}
}
