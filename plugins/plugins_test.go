package plugins_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/plugins"
)

type limits struct {
	MaxBytes int `yaml:"maxBytes"`
}

type settingsPlugin struct {
	Regions int             `yaml:"regions"`
	Name    string          `yaml:"name"`
	Tick    config.Duration `yaml:"tick"`
	Limits  limits          `yaml:"limits"`
	Tags    map[string]int  `yaml:"tags"`
	List    []limits        `yaml:"list"`
}

func (p *settingsPlugin) Validate() error {
	if p.Regions < 0 {
		return errors.New("regions must not be negative")
	}
	if p.Name == "panic" {
		panic("validate exploded")
	}
	return nil
}

var _ plugins.Validator = (*settingsPlugin)(nil)

type bare struct{}

func init() {
	plugins.Register(plugins.Info{Name: "test-settings", New: func() plugins.Plugin { return new(settingsPlugin) }})
	plugins.Register(plugins.Info{Name: "test-bare", New: func() plugins.Plugin { return new(bare) }})
	plugins.Register(plugins.Info{Name: "test-attach", New: func() plugins.Plugin { return new(bare) },
		Attach: func(a plugins.Attachment) (plugins.Plugin, error) {
			p := &attached{Group: a.Group}
			return p, a.Spec.Decode(&p.Settings)
		}})
}

// attached is what "test-attach" attaches: its group's settings.
type attached struct {
	Group    string
	Settings settingsPlugin
}

func (a *attached) Validate() error { return a.Settings.Validate() }

// spec parses a system file with one plugin and returns its spec.
func spec(t *testing.T, plugin string) plugins.Spec {
	t.Helper()
	src := "system: s\nsecret: 0123456789abcdef0123\ngroups:\n  - name: g\n    visibility: internal\n    plugins:\n" + plugin
	sys, err := config.Parse("cluster.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	p := sys.Groups[0].Plugins[0]
	return plugins.Spec{Name: p.Name, Settings: p.Settings, File: sys.File, Line: p.Line}
}

func TestProvisionDecodesSettings(t *testing.T) {
	s := spec(t, "      - name: test-settings\n        settings:\n          regions: 64\n          tick: 250ms\n          limits: {maxBytes: 10}\n          tags: {a: 1}\n          list: [{maxBytes: 3}]\n")
	p, err := plugins.Provision(s)
	if err != nil {
		t.Fatal(err)
	}
	sp := p.(*settingsPlugin)
	if sp.Regions != 64 || sp.Tick.Duration() != 250*time.Millisecond || sp.Limits.MaxBytes != 10 || sp.Tags["a"] != 1 || sp.List[0].MaxBytes != 3 {
		t.Fatalf("decoded %+v", sp)
	}
	// Each Provision makes a fresh value: no shared state between servers.
	p2, _ := plugins.Provision(s)
	if p2 == p {
		t.Fatal("Provision returned the same value twice")
	}
}

func TestProvisionErrorsNameTheLine(t *testing.T) {
	cases := []struct {
		name, plugin, want string
	}{
		{"unknown plugin", "      - name: nope\n", `cluster.yaml:7: plugin "nope"`},
		{"unknown key", "      - name: test-settings\n        settings:\n          regions: 3\n          regoins: 4\n", `line 10: unknown key "regoins"`},
		{"unknown nested key", "      - name: test-settings\n        settings:\n          limits:\n            maxBites: 1\n", `line 10: unknown key "maxBites" in limits`},
		{"unknown key in list", "      - name: test-settings\n        settings:\n          list:\n            - maxBites: 1\n", `line 10: unknown key "maxBites" in list[0]`},
		{"wrong type", "      - name: test-settings\n        settings:\n          regions: many\n", "line 9"},
		{"bad duration", "      - name: test-settings\n        settings:\n          tick: 5\n", "line 9"},
		{"validate", "      - name: test-settings\n        settings:\n          regions: -1\n", `cluster.yaml:7: plugin "test-settings"`},
		{"validate panic", "      - name: test-settings\n        settings:\n          name: panic\n", "Validate panicked"},
		{"settings on a plugin without any", "      - name: test-bare\n        settings:\n          x: 1\n", `unknown key "x"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := plugins.Provision(spec(t, c.plugin))
			if !errors.Is(err, plugins.ErrSettings) {
				t.Fatalf("err = %v, want ErrSettings", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %q, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestRegisterPanicsOnProgrammerError(t *testing.T) {
	for name, info := range map[string]plugins.Info{
		"empty name": {New: func() plugins.Plugin { return nil }},
		"nil New":    {Name: "x-nil-new"},
		"duplicate":  {Name: "test-bare", New: func() plugins.Plugin { return new(bare) }},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Register did not panic")
				}
			}()
			plugins.Register(info)
		})
	}
	if _, ok := plugins.Lookup("test-bare"); !ok {
		t.Fatal("Lookup lost a plugin")
	}
	names := strings.Join(plugins.Names(), ",")
	if !strings.Contains(names, "test-bare") || !strings.Contains(names, "test-settings") {
		t.Fatalf("Names = %s", names)
	}
}

func TestDecodeStrictNeedsPointer(t *testing.T) {
	var n yaml.Node
	if err := plugins.DecodeStrict(&n, settingsPlugin{}); err == nil {
		t.Fatal("want an error for a non-pointer")
	}
}

func TestAttach(t *testing.T) {
	s := spec(t, "      - name: test-attach\n        settings:\n          regions: 5\n")
	p, ok, err := plugins.Attach(plugins.Attachment{Group: "cloud", Spec: s})
	if err != nil || !ok {
		t.Fatalf("Attach = %v, %v", ok, err)
	}
	if a := p.(*attached); a.Group != "cloud" || a.Settings.Regions != 5 {
		t.Fatalf("attached %+v", a)
	}
	// A plugin without Attach attaches nothing.
	if _, ok, err := plugins.Attach(plugins.Attachment{Group: "cloud", Spec: spec(t, "      - name: test-bare\n")}); ok || err != nil {
		t.Fatalf("Attach(test-bare) = %v, %v", ok, err)
	}
	for want, plugin := range map[string]string{
		`cluster.yaml:9: plugin "test-attach": plugins: bad plugin settings: line 9: unknown key "regoins"`:                            "      - name: test-attach\n        settings:\n          regoins: 5\n",
		`cluster.yaml:7: plugin "test-attach" attached from group "cloud": plugins: bad plugin settings: regions must not be negative`: "      - name: test-attach\n        settings:\n          regions: -1\n",
	} {
		_, _, err := plugins.Attach(plugins.Attachment{Group: "cloud", Spec: spec(t, plugin)})
		if !errors.Is(err, plugins.ErrSettings) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `"cloud"`) {
			t.Fatalf("err = %v, want %s", err, want)
		}
	}
}
