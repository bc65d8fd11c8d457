package registry_test

import (
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/registry"
	"github.com/cloudrift/cloudrift/registry/embedded"
)

// testSettings is the settings of the "test-conn" connector.
type testSettings struct {
	Dir   string `yaml:"dir"`
	Fail  bool   `yaml:"fail"`
	Inner struct {
		Depth int `yaml:"depth"`
	} `yaml:"inner"`
}

var errTestOpen = errors.New("test-conn: cannot open")

func (s *testSettings) Validate() error {
	if s.Dir == "" {
		return errors.New("dir is required")
	}
	return nil
}

// opened records the settings and options the last Open passed.
var opened struct {
	settings testSettings
	opts     registry.Options
}

func init() {
	registry.Register("test-conn", func(s *testSettings, opts registry.Options) (registry.Connector, error) {
		if s.Fail {
			return nil, errTestOpen
		}
		opened.settings, opened.opts = *s, opts
		return embedded.NewHub().Connector(), nil
	})
}

func spec(t *testing.T, typ, settings string) registry.Spec {
	t.Helper()
	s := registry.Spec{Type: typ, File: "sys.yaml", Line: 7}
	if settings != "" {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(settings), &doc); err != nil {
			t.Fatal(err)
		}
		s.Settings = *doc.Content[0]
	}
	return s
}

func TestOpenDecodesSettings(t *testing.T) {
	c, err := registry.Open(spec(t, "test-conn", "dir: /tmp/x\ninner: {depth: 3}\n"), registry.Options{System: "sys"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if opened.settings.Dir != "/tmp/x" || opened.settings.Inner.Depth != 3 || opened.opts.System != "sys" {
		t.Errorf("opened with %+v %+v", opened.settings, opened.opts)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, c := range []struct {
		name, typ, settings string
		is                  error
		want                string
	}{
		{"unknown type", "nosuch", "", registry.ErrUnknownType, `sys.yaml:7: registry type "nosuch": registry: unknown registry type: no such connector is compiled into this binary (have: `},
		{"unknown key", "test-conn", "dir: x\ninner: {detph: 1}\n", registry.ErrSettings, `sys.yaml:1: registry "test-conn": registry: bad registry settings: line 2: unknown key "detph" in inner (did you mean "depth"?)`},
		{"wrong kind", "test-conn", "dir: [a, b]\n", registry.ErrSettings, "line 1"},
		{"validate", "test-conn", "fail: true\n", registry.ErrSettings, "dir is required"},
		{"no settings", "test-conn", "", registry.ErrSettings, `sys.yaml:7: registry "test-conn": registry: bad registry settings: dir is required`},
		{"constructor", "test-conn", "dir: x\nfail: true\n", errTestOpen, `sys.yaml:7: registry "test-conn": test-conn: cannot open`},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := registry.Open(spec(t, c.typ, c.settings), registry.Options{System: "sys"})
			if conn != nil {
				conn.Close()
			}
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open = %v, want %v containing %q", err, c.is, c.want)
			}
			if c.is != errTestOpen {
				if err := registry.Check(spec(t, c.typ, c.settings)); !errors.Is(err, c.is) {
					t.Fatalf("Check = %v, want %v", err, c.is)
				}
			}
		})
	}
}

func TestNamesAndRegisterPanics(t *testing.T) {
	names := strings.Join(registry.Names(), ",")
	if !strings.Contains(names, "embedded") || !strings.Contains(names, "test-conn") {
		t.Fatalf("Names = %s", names)
	}
	open := func(*struct{}, registry.Options) (registry.Connector, error) { return nil, nil }
	for name, register := range map[string]func(){
		"empty name": func() { registry.Register("", open) },
		"nil open":   func() { registry.Register[struct{}]("x-nil", nil) },
		"duplicate":  func() { registry.Register("embedded", open) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Register did not panic")
				}
			}()
			register()
		})
	}
}
