package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/protocol"
)

// env returns a lookup function over m.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// problems returns every *config.Error in err.
func problems(t *testing.T, err error) []*config.Error {
	t.Helper()
	var out []*config.Error
	var walk func(error)
	walk = func(e error) {
		if ce, ok := e.(*config.Error); ok {
			out = append(out, ce)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, c := range j.Unwrap() {
				walk(c)
			}
			return
		}
		t.Errorf("unexpected error type %T: %v", e, e)
	}
	walk(err)
	return out
}

// lineOf returns the 1-based line of the first line of src containing
// marker, or 0.
func lineOf(src, marker string) int {
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, marker) {
			return i + 1
		}
	}
	return 0
}

const full = `system: openworld
secret: ${SECRET:-0123456789abcdef-default}
registry:
  type: consul
  settings:
    address: 10.0.0.1:8500
    token: tok
    scheme: https
    datacenter: dc1
    ttl: 3s
    deregisterAfter: 2m
    tls:
      caFile: /ca.pem
      certFile: /cert.pem
      keyFile: /key.pem
      serverName: consul.local
      insecureSkipVerify: true
links:
  handshakeTimeout: 2s
  heartbeat: 250ms
  timeout: 2s
  maxFrame: 65536
  queueBytes: 131072
  backoffMin: 50ms
  backoffMax: 1s
  socketDir: /run/cloudrift
groups:
  - name: client
    visibility: external
    listen: ":7350"
    connectsTo: [world, cloud]
    replicas: 2
    plugins:
      - name: gateway
  - name: world
    visibility: internal
    connectsTo:
      - cloud
    replicas: 3
    plugins:
      - name: world
        settings: { regions: 64, tick: 50ms }
  - name: cloud
    visibility: internal
    listen: "[::1]:0"
    plugins: [{ name: cloudmemory }]
`

func TestParseFull(t *testing.T) {
	s, err := config.Parse("cluster.yaml", []byte(full), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if s.File != "cluster.yaml" || s.System != "openworld" || s.Secret != "0123456789abcdef-default" || s.Line != 1 {
		t.Errorf("top level = %q %q %q line %d", s.File, s.System, s.Secret, s.Line)
	}
	var regSettings struct {
		Address string
		TLS     map[string]any
	}
	if err := s.Registry.Settings.Decode(&regSettings); err != nil {
		t.Fatalf("registry settings: %v", err)
	}
	if s.Registry.Type != "consul" || s.Registry.Line != 4 || s.Registry.Settings.Line != 6 ||
		regSettings.Address != "10.0.0.1:8500" || regSettings.TLS["serverName"] != "consul.local" {
		t.Errorf("Registry = %q line %d, settings line %d: %+v", s.Registry.Type, s.Registry.Line, s.Registry.Settings.Line, regSettings)
	}
	wantLinks := config.Links{
		HandshakeTimeout: config.Duration(2 * time.Second), Heartbeat: config.Duration(250 * time.Millisecond),
		Timeout: config.Duration(2 * time.Second), MaxFrame: 65536, QueueBytes: 131072,
		BackoffMin: config.Duration(50 * time.Millisecond), BackoffMax: config.Duration(time.Second), LeaveGrace: config.DefaultLeaveGrace,
		SocketDir: "/run/cloudrift",
	}
	if s.Links != wantLinks {
		t.Errorf("Links = %+v\nwant %+v", s.Links, wantLinks)
	}
	type gw struct {
		name, vis, listen, connects string
		replicas, line              int
		plugins                     string
	}
	wantGroups := []gw{
		{"client", "external", ":7350", "world,cloud", 2, 28, "gateway"},
		{"world", "internal", "127.0.0.1:0", "cloud", 3, 35, "world"},
		{"cloud", "internal", "[::1]:0", "", 1, 43, "cloudmemory"},
	}
	if len(s.Groups) != len(wantGroups) {
		t.Fatalf("%d groups, want %d", len(s.Groups), len(wantGroups))
	}
	for i, w := range wantGroups {
		g := s.Groups[i]
		var plugins []string
		for _, p := range g.Plugins {
			plugins = append(plugins, p.Name)
		}
		got := gw{g.Name, string(g.Visibility), g.Listen, strings.Join(g.ConnectsTo, ","), g.Replicas, g.Line, strings.Join(plugins, ",")}
		if got != w {
			t.Errorf("group %d = %+v, want %+v", i, got, w)
		}
	}
	world, ok := s.Group("world")
	if !ok || world != &s.Groups[1] {
		t.Fatalf("Group(world) = %p, %v", world, ok)
	}
	if _, ok := s.Group("nope"); ok {
		t.Error("Group(nope) found")
	}
	p := world.Plugins[0]
	if p.Line != 41 || p.Settings.Kind != yaml.MappingNode {
		t.Fatalf("world plugin line %d settings kind %d", p.Line, p.Settings.Kind)
	}
	var settings struct {
		Regions int             `yaml:"regions"`
		Tick    config.Duration `yaml:"tick"`
	}
	if err := p.Settings.Decode(&settings); err != nil {
		t.Fatal(err)
	}
	if settings.Regions != 64 || settings.Tick.Duration() != 50*time.Millisecond {
		t.Errorf("settings = %+v", settings)
	}
	if k := s.Groups[0].Plugins[0].Settings.Kind; k != 0 {
		t.Errorf("absent settings have kind %d", k)
	}
}

func TestParseDefaults(t *testing.T) {
	src := `system: s
secret: 0123456789abcdef
groups:
  - name: a
    visibility: internal
    listen: ""
    replicas: ~
    plugins:
      - name: p
        settings: ~
`
	s, err := config.Parse("c.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantLinks := config.Links{
		HandshakeTimeout: config.Duration(5 * time.Second), Heartbeat: config.Duration(time.Second),
		Timeout: config.Duration(5 * time.Second), MaxFrame: protocol.DefaultMaxFrame, QueueBytes: 8 << 20,
		BackoffMin: config.Duration(100 * time.Millisecond), BackoffMax: config.Duration(5 * time.Second), LeaveGrace: config.DefaultLeaveGrace,
	}
	if s.Links != wantLinks {
		t.Errorf("Links = %+v\nwant %+v", s.Links, wantLinks)
	}
	if s.Registry.Type != config.RegistryEmbedded || s.Registry.Settings.Kind != 0 {
		t.Errorf("Registry = %+v", s.Registry)
	}
	g := s.Groups[0]
	if g.Listen != "127.0.0.1:0" || g.Replicas != 1 || g.Plugins[0].Settings.Kind != 0 {
		t.Errorf("group = %+v", g)
	}
}

// registry.startTimeout: 3m unless written; a written 0 stays 0 (give up
// at the first failure).
func TestRegistryStartTimeout(t *testing.T) {
	for _, tc := range []struct {
		block string
		want  time.Duration
	}{
		{"", 3 * time.Minute},
		{"registry: { type: consul }\n", 3 * time.Minute},
		{"registry: { startTimeout: 30s }\n", 30 * time.Second},
		{"registry: { startTimeout: 0s }\n", 0},
	} {
		s, err := config.Parse("c.yaml", []byte(head+tc.block+"groups: [{ name: a, visibility: internal }]\n"), nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.block, err)
		}
		if got := s.Registry.StartTimeout.Duration(); got != tc.want {
			t.Errorf("%q: startTimeout %v, want %v", tc.block, got, tc.want)
		}
	}
}

// TestDerivedDefaults: a default never contradicts a value that was written.
func TestDerivedDefaults(t *testing.T) {
	src := `system: s
secret: 0123456789abcdef
links: { heartbeat: 3s, maxFrame: 33554432, backoffMin: 10s }
groups: [{ name: a, visibility: internal }]
`
	s, err := config.Parse("c.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Links.Timeout.Duration() != 15*time.Second || s.Links.QueueBytes != 32<<20 || s.Links.BackoffMax.Duration() != 10*time.Second {
		t.Errorf("Links = %+v", s.Links)
	}
}

const head = "system: s\nsecret: 0123456789abcdef\n"

func TestParseErrors(t *testing.T) {
	// Each case has exactly one problem, on the line marked "#<"; the
	// message must contain every string of want. "#first" marks a line the
	// message must name.
	tests := []struct {
		name string
		src  string
		env  map[string]string
		want []string
	}{
		{"unknown connectsTo target", head + `groups:
  - name: client
    visibility: external
    connectsTo: [wrld] #<
  - name: world
    visibility: internal
`, nil, []string{`group "client": connectsTo "wrld": no such group`, `did you mean "world"`}},
		{"self connection", head + `groups:
  - name: a
    visibility: internal
    connectsTo:
      - a #<
`, nil, []string{`group "a": connectsTo "a"`, "itself"}},
		{"two-group cycle", head + `groups:
  - name: a
    visibility: internal
    connectsTo: [b]
  - name: b
    visibility: internal
    connectsTo:
      - a #<
`, nil, []string{`group "b": connectsTo "a" makes a cycle: a -> b -> a`}},
		{"three-group cycle", head + `groups:
  - name: a
    visibility: internal
    connectsTo: [b]
  - name: c
    visibility: internal
    connectsTo: [x, a] #<
  - name: b
    visibility: internal
    connectsTo: [c]
  - name: x
    visibility: internal
`, nil, []string{`group "c": connectsTo "a" makes a cycle: a -> b -> c -> a`}},
		{"connects to external", head + `groups:
  - name: a
    visibility: internal
    connectsTo: [lobby] #<
  - name: lobby
    visibility: external
`, nil, []string{`group "a": connectsTo "lobby"`, "external groups accept no servers"}},
		{"duplicate connectsTo", head + `groups:
  - name: a
    visibility: internal
    connectsTo:
      - b
      - b #<
  - name: b
    visibility: internal
`, nil, []string{`connectsTo "b" is listed twice`}},
		{"duplicate group name", head + `groups:
  - name: a #first
    visibility: internal
  - name: b
    visibility: internal
  - name: a #<
    visibility: internal
`, nil, []string{`group "a": duplicate group name "a", first defined at line`}},
		{"missing secret", `system: s #<
groups: [{ name: a, visibility: internal }]
`, nil, []string{`missing "secret"`}},
		{"short secret", `system: s
secret: too-short #<
groups: [{ name: a, visibility: internal }]
`, nil, []string{"secret is too short (9 bytes)"}},
		{"unset variable", `system: s
secret: ${CLOUDRIFT_TEST_SECRET} #<
groups: [{ name: a, visibility: internal }]
`, nil, []string{`secret: environment variable "CLOUDRIFT_TEST_SECRET" is not set`}},
		{"bad variable reference", head + `groups:
  - name: a
    visibility: internal
    listen: ${not a var} #<
`, nil, []string{`listen: bad variable reference "${not a var}"`}},
		{"unterminated variable", head + `groups:
  - name: a
    visibility: internal
    listen: 127.0.0.1:${PORT #<
`, nil, []string{`listen: unterminated "${"`}},
		{"missing system", `secret: 0123456789abcdef #<
groups: [{ name: a, visibility: internal }]
`, nil, []string{`missing "system"`}},
		{"bad system name", `system: Open World #<
secret: 0123456789abcdef
groups: [{ name: a, visibility: internal }]
`, nil, []string{`system name "Open World" is invalid`}},
		{"missing groups", "system: s #<\nsecret: 0123456789abcdef\nregistry: { type: embedded }\n", nil, []string{`missing "groups"`}},
		{"empty groups", head + "groups: [] #<\n", nil, []string{`missing "groups"`}},
		{"bare integer duration", head + `links:
  heartbeat: 5 #<
groups: [{ name: a, visibility: internal }]
`, nil, []string{`links: heartbeat "5": durations need a unit, e.g. "5s"`}},
		{"bad duration", head + `links:
  backoffMax: soon #<
groups: [{ name: a, visibility: internal }]
`, nil, []string{`links: backoffMax "soon" is not a duration`}},
		{"unknown top-level key", head + `sytem: s #<
groups: [{ name: a, visibility: internal }]
`, nil, []string{`unknown key "sytem"`, `did you mean "system"`}},
		{"unknown registry key", head + `registry:
  type: consul
  adress: x #<
groups: [{ name: a, visibility: internal }]
`, nil, []string{`registry: unknown key "adress"`}},
		{"old consul block", head + `registry:
  type: consul
  consul: #<
    address: x
groups: [{ name: a, visibility: internal }]
`, nil, []string{`registry: unknown key "consul": a connector's settings go under "settings:"`}},
		{"unknown links key", head + `links:
  hearbeat: 1s #<
groups: [{ name: a, visibility: internal }]
`, nil, []string{`links: unknown key "hearbeat"`, `did you mean "heartbeat"`}},
		{"unknown group key", head + `groups:
  - name: world
    visibility: internal
  - name: client
    visibility: external
    conectsTo: [world] #<
`, nil, []string{`group "client": unknown key "conectsTo"`, `did you mean "connectsTo"`}},
		{"unknown plugin key", head + `groups:
  - name: world
    visibility: internal
    plugins:
      - name: w
        setings: { a: 1 } #<
`, nil, []string{`group "world": plugin "w": unknown key "setings"`}},
		{"repeated key", head + `groups:
  - name: a
    replicas: 2 #first
    visibility: internal
    replicas: 3 #<
`, nil, []string{`group "a": key "replicas" repeated (first at line`}},
		{"wrong type", head + `groups:
  - name: a
    visibility: internal
    replicas: two #<
`, nil, []string{`group "a": replicas "two" is not an integer`}},
		{"quoted integer", head + `groups:
  - name: a
    visibility: internal
    replicas: "2" #<
`, nil, []string{`replicas "2" is not an integer`}},
		{"mapping for a string", head + `groups:
  - name: a
    visibility: internal
    listen: { host: x } #<
`, nil, []string{`group "a": listen: want a single value, got a mapping`}},
		{"string for a list", head + `groups:
  - name: a
    visibility: internal
    connectsTo: b #<
  - name: b
    visibility: internal
`, nil, []string{`group "a": connectsTo: want a list, got the string "b"`}},
		{"scalar group", head + `groups:
  - a #<
  - { name: b, visibility: internal }
`, nil, []string{`groups: each group is a mapping`}},
		{"bad visibility", head + `groups:
  - name: a
    visibility: public #<
`, nil, []string{`group "a": visibility "public" is not "external" or "internal"`}},
		{"missing visibility", head + `groups:
  - name: a #<
    replicas: 2
`, nil, []string{`group "a": missing "visibility"`}},
		{"missing group name", head + `groups:
  - visibility: internal #<
`, nil, []string{`groups[0]: missing "name"`}},
		{"bad group name", head + `groups:
  - name: World #<
    visibility: internal
`, nil, []string{`group "World": name "World" is invalid`}},
		{"replicas zero", head + `groups:
  - name: a
    visibility: internal
    replicas: 0 #<
`, nil, []string{`group "a": replicas 0 is out of range (1..1000)`}},
		{"replicas too many", head + `groups:
  - name: a
    visibility: internal
    replicas: 1001 #<
`, nil, []string{`replicas 1001 is out of range`}},
		{"listen without port", head + `groups:
  - name: a
    visibility: internal
    listen: localhost #<
`, nil, []string{`group "a": listen "localhost" is not host:port`}},
		{"listen port out of range", head + `groups:
  - name: a
    visibility: internal
    listen: ":99999" #<
`, nil, []string{`listen ":99999" has port "99999"`}},
		{"empty plugin name", head + `groups:
  - name: a
    visibility: internal
    plugins:
      - settings: { x: 1 } #<
`, nil, []string{`group "a": plugins[0]: missing plugin "name"`}},
		{"duplicate plugin", head + `groups:
  - name: a
    visibility: internal
    plugins:
      - name: chat #first
      - name: chat #<
`, nil, []string{`group "a": plugin "chat" is listed twice (first at line`}},
		{"registry type", head + `registry:
  type: Etcd! #<
groups: [{ name: a, visibility: internal }]
`, nil, []string{`registry: type "Etcd!" is invalid`}},
		{"negative registry startTimeout", head + `registry:
  startTimeout: -1s #<
groups: [{ name: a, visibility: internal }]
`, nil, []string{`registry: startTimeout "-1s" must not be negative`}},
		{"registry startTimeout without unit", head + `registry:
  startTimeout: 30 #<
groups: [{ name: a, visibility: internal }]
`, nil, []string{`registry: startTimeout "30": durations need a unit`}},
		{"timeout not above heartbeat", head + `links:
  heartbeat: 2s
  timeout: 2s #<
groups: [{ name: a, visibility: internal }]
`, nil, []string{`links: timeout "2s" must be greater than heartbeat "2s"`}},
		{"zero heartbeat", head + `links:
  heartbeat: 0s #<
groups: [{ name: a, visibility: internal }]
`, nil, []string{`links: heartbeat "0s" must be greater than zero`}},
		{"maxFrame too small", head + `links:
  maxFrame: 63 #<
groups: [{ name: a, visibility: internal }]
`, nil, []string{`links: maxFrame 63 is out of range`}},
		{"queueBytes below maxFrame", head + `links:
  maxFrame: 4096
  queueBytes: 4095 #<
groups: [{ name: a, visibility: internal }]
`, nil, []string{`links: queueBytes 4095 must be at least maxFrame 4096`}},
		{"backoffMax below backoffMin", head + `links:
  backoffMin: 2s
  backoffMax: 1s #<
groups: [{ name: a, visibility: internal }]
`, nil, []string{`backoffMax "1s" must be at least backoffMin "2s"`}},
		{"yaml syntax", head + `groups:
  - name: a
    visibility: internal
    replicas: 2: 3 #<
`, nil, []string{"YAML syntax: mapping values are not allowed"}},
		// yaml.v3 names the line where the enclosing block starts.
		{"yaml syntax in a block", head + `groups:
  - name: a #<
    visibility: internal
   replicas: 2
`, nil, []string{"YAML syntax: did not find expected '-' indicator"}},
		{"unknown anchor", head + `groups:
  - name: a
    visibility: internal
    plugins: *common #<
`, nil, []string{"YAML syntax", "unknown anchor 'common'"}},
		{"second document", head + `groups: [{ name: a, visibility: internal }]
--- #<
system: t
`, nil, []string{"a second YAML document"}},
		{"not a mapping", "- system #<\n", nil, []string{"want a mapping"}},
		{"empty file", "", nil, []string{"the file is empty"}},
		{"quoted replicas from env", head + `groups:
  - name: a
    visibility: internal
    replicas: "${N}" #<
`, map[string]string{"N": "2"}, []string{`replicas "2" is not an integer`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := config.Parse("cluster.yaml", []byte(tt.src), env(tt.env))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", s)
			}
			if s != nil {
				t.Error("Parse returned a System with an error")
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
			}
			var first *config.Error
			if !errors.As(err, &first) {
				t.Fatalf("errors.As found no *Error in %v", err)
			}
			all := problems(t, err)
			if len(all) != 1 {
				t.Errorf("%d problems, want 1:\n%v", len(all), err)
			}
			wantLine := lineOf(tt.src, "#<")
			if first.Line != wantLine || first.File != "cluster.yaml" {
				t.Errorf("at %s:%d, want cluster.yaml:%d: %v", first.File, first.Line, wantLine, err)
			}
			msg := first.Error()
			prefix := "cluster.yaml: "
			if wantLine > 0 {
				prefix = fmt.Sprintf("cluster.yaml:%d: ", wantLine)
			}
			if !strings.HasPrefix(msg, prefix) {
				t.Errorf("message %q does not start with %q", msg, prefix)
			}
			want := tt.want
			if l := lineOf(tt.src, "#first"); l > 0 {
				want = append(want, fmt.Sprintf("line %d", l))
			}
			for _, w := range want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestSecretNotInMessage(t *testing.T) {
	src := "system: s\nsecret: hunter2\ngroups: [{ name: a, visibility: internal }]\n"
	_, err := config.Parse("c.yaml", []byte(src), nil)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
}

func TestMultipleErrors(t *testing.T) {
	src := `system: s
secret: short
links:
  heartbeat: 1
groups:
  - name: client
    visibility: external
    connectsTo: [wrld]
    replicas: 0
  - name: world
    visibility: internal
    bogus: true
`
	_, err := config.Parse("cluster.yaml", []byte(src), nil)
	if !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	want := []struct {
		line int
		text string
	}{
		{2, "secret is too short"},
		{4, `heartbeat "1": durations need a unit`},
		{8, `connectsTo "wrld": no such group`},
		{9, "replicas 0"},
		{12, `unknown key "bogus"`},
	}
	all := problems(t, err)
	if len(all) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(all), len(want), err)
	}
	for i, w := range want {
		if all[i].Line != w.line || !strings.Contains(all[i].Msg, w.text) {
			t.Errorf("problem %d = %v, want line %d with %q", i, all[i], w.line, w.text)
		}
	}
	var first *config.Error
	if !errors.As(err, &first) || first != all[0] {
		t.Errorf("errors.As found %v, want the first problem", first)
	}
	if got := strings.Count(err.Error(), "\n") + 1; got != len(want) {
		t.Errorf("message has %d lines, want %d:\n%v", got, len(want), err)
	}
}

func TestEnvExpansion(t *testing.T) {
	src := `# a comment is not expanded: ${NOT_SET}
system: ${SYSTEM:-openworld}
secret: ${SECRET}
registry:
  type: ${REGISTRY:-embedded}
  settings:
    token: "$$ ${EMPTY:-fallback} $"
    address: ${ADDR}
links:
  heartbeat: ${HEARTBEAT:-2s}
groups:
  - name: ${GROUP}
    visibility: internal
    listen: ${HOST:-127.0.0.1}:${PORT:-7350}
    replicas: ${REPLICAS:-1}
    plugins:
      - name: p
        settings:
          path: /data/${GROUP}
          count: ${COUNT}
          literal: $${GROUP}
`
	vars := map[string]string{
		"SECRET":   "0123456789abcdef$",
		"EMPTY":    "",
		"ADDR":     "${SECRET}", // substituted text is not expanded again
		"GROUP":    "world",
		"PORT":     "9000",
		"REPLICAS": "4",
		"COUNT":    "12",
	}
	s, err := config.Parse("c.yaml", []byte(src), env(vars))
	if err != nil {
		t.Fatal(err)
	}
	var regSettings map[string]string
	if err := s.Registry.Settings.Decode(&regSettings); err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"system", s.System, "openworld"},
		{"secret", s.Secret, "0123456789abcdef$"},
		{"type", s.Registry.Type, "embedded"},
		{"token", regSettings["token"], "$ fallback $"},
		{"address", regSettings["address"], "${SECRET}"},
		{"heartbeat", s.Links.Heartbeat.String(), "2s"},
		{"name", s.Groups[0].Name, "world"},
		{"listen", s.Groups[0].Listen, "127.0.0.1:9000"},
		{"replicas", fmt.Sprint(s.Groups[0].Replicas), "4"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	var settings struct {
		Path    string `yaml:"path"`
		Count   int    `yaml:"count"`
		Literal string `yaml:"literal"`
	}
	if err := s.Groups[0].Plugins[0].Settings.Decode(&settings); err != nil {
		t.Fatal(err)
	}
	if settings.Path != "/data/world" || settings.Count != 12 || settings.Literal != "${GROUP}" {
		t.Errorf("settings = %+v", settings)
	}

	// The same file with SECRET unset and COUNT unset: both lines named.
	delete(vars, "SECRET")
	delete(vars, "COUNT")
	_, err = config.Parse("c.yaml", []byte(src), env(vars))
	all := problems(t, err)
	if len(all) != 2 || all[0].Line != 3 || !strings.Contains(all[0].Msg, `"SECRET"`) ||
		all[1].Line != 20 || !strings.Contains(all[1].Msg, `count: environment variable "COUNT" is not set`) {
		t.Errorf("err = %v", err)
	}
}

func TestAliasesAndMerge(t *testing.T) {
	src := head + `groups:
  - &base
    name: world
    visibility: internal
    replicas: 3
    plugins: &plugins
      - name: world
  - <<: *base
    name: zone
    replicas: 2
  - name: edge
    visibility: external
    connectsTo: [world, zone]
    plugins: *plugins
`
	s, err := config.Parse("c.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	zone, _ := s.Group("zone")
	edge, _ := s.Group("edge")
	if zone.Visibility != config.Internal || zone.Replicas != 2 || len(zone.Plugins) != 1 ||
		len(edge.Plugins) != 1 || edge.Plugins[0].Name != "world" {
		t.Errorf("zone = %+v, edge = %+v", zone, edge)
	}
}

func TestExampleFile(t *testing.T) {
	data, err := os.ReadFile("../cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := config.Parse("../cluster.yaml", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.System != "openworld" || s.Secret != "dev-only-secret-change-me" || s.Registry.Type != config.RegistryEmbedded {
		t.Errorf("system = %q %q %q", s.System, s.Secret, s.Registry.Type)
	}
	want := map[string]struct {
		vis      config.Visibility
		replicas int
		connects string
		plugin   string
	}{
		"client": {config.External, 2, "world,social,cloud", "gateway"},
		"world":  {config.Internal, 3, "cloud", "world"},
		"social": {config.Internal, 1, "", "chat"},
		"cloud":  {config.Internal, 3, "", "cloudmemory"},
	}
	if len(s.Groups) != len(want) {
		t.Fatalf("%d groups", len(s.Groups))
	}
	for _, g := range s.Groups {
		w, ok := want[g.Name]
		if !ok || g.Visibility != w.vis || g.Replicas != w.replicas || strings.Join(g.ConnectsTo, ",") != w.connects ||
			len(g.Plugins) != 1 || g.Plugins[0].Name != w.plugin {
			t.Errorf("group %+v, want %+v", g, w)
		}
	}
	w, _ := s.Group("world")
	var settings struct {
		Regions int `yaml:"regions"`
	}
	if err := w.Plugins[0].Settings.Decode(&settings); err != nil || settings.Regions != 64 {
		t.Errorf("world settings = %+v, %v", settings, err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(path, []byte(head+"groups: [{ name: a, visibility: internal }]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := config.Load(path)
	if err != nil || s.File != path || s.Groups[0].Name != "a" {
		t.Fatalf("Load = %+v, %v", s, err)
	}
	_, err = config.Load(filepath.Join(dir, "missing.yaml"))
	if err == nil || errors.Is(err, config.ErrInvalid) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(head), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = config.Load(bad)
	if !errors.Is(err, config.ErrInvalid) || !strings.HasPrefix(err.Error(), bad+":1: ") {
		t.Errorf("Load(bad) = %v", err)
	}
}

func TestValidateProgrammatic(t *testing.T) {
	s := &config.System{
		System: "dev",
		Secret: "0123456789abcdef",
		Groups: []config.Group{
			{Name: "client", Visibility: config.External, ConnectsTo: []string{"cloud"}},
			{Name: "cloud", Visibility: config.Internal, Replicas: 3},
		},
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.Groups[0].Listen != "127.0.0.1:0" || s.Groups[0].Replicas != 1 || s.Links.MaxFrame != protocol.DefaultMaxFrame ||
		s.Registry.Type != config.RegistryEmbedded {
		t.Errorf("defaults not applied: %+v", s)
	}

	bad := &config.System{
		System: "dev",
		Secret: "0123456789abcdef",
		Groups: []config.Group{
			{Name: "a", Visibility: config.Internal, ConnectsTo: []string{"b"}},
			{Name: "b", Visibility: config.Internal, ConnectsTo: []string{"a"}, Replicas: -1},
		},
	}
	err := bad.Validate()
	all := problems(t, err)
	if len(all) != 2 || !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("Validate = %v", err)
	}
	for _, want := range []string{
		`<system>: group "b": replicas -1 is out of range`,
		`<system>: group "b": connectsTo "a" makes a cycle: a -> b -> a`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\ndoes not contain %q", err, want)
		}
	}
	bad.File = "cluster.yaml"
	bad.Groups[1].Line = 7
	if err := bad.Validate(); !strings.Contains(err.Error(), "cluster.yaml:7: group \"b\"") {
		t.Errorf("with File and Line: %v", err)
	}

	var empty config.System
	err = empty.Validate()
	if n := len(problems(t, err)); n != 3 {
		t.Errorf("empty System: %d problems, want 3: %v", n, err)
	}
}

func TestApplyDefaultsKeepsValues(t *testing.T) {
	s := config.System{Links: config.Links{Heartbeat: config.Duration(time.Second), Timeout: config.Duration(9 * time.Second)},
		Groups: []config.Group{{Replicas: 5, Listen: ":1"}}}
	s.ApplyDefaults()
	if s.Links.Timeout.Duration() != 9*time.Second || s.Groups[0].Replicas != 5 || s.Groups[0].Listen != ":1" || s.Links.BackoffMin == 0 {
		t.Errorf("ApplyDefaults = %+v", s)
	}
}

func TestDurationYAML(t *testing.T) {
	var v struct {
		D config.Duration `yaml:"d"`
	}
	if err := yaml.Unmarshal([]byte("d: 250ms"), &v); err != nil || v.D.Duration() != 250*time.Millisecond {
		t.Errorf("250ms: %v %v", v.D, err)
	}
	err := yaml.Unmarshal([]byte("x: 1\nd: 5"), &v)
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "need a unit") {
		t.Errorf("bare 5: %v", err)
	}
	out, err := yaml.Marshal(v)
	if err != nil || strings.TrimSpace(string(out)) != "d: 250ms" {
		t.Errorf("Marshal = %q, %v", out, err)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    config.Error
		want string
	}{
		{config.Error{File: "c.yaml", Line: 3, Column: 5, Msg: "m"}, "c.yaml:3: m"},
		{config.Error{File: "c.yaml", Msg: "m"}, "c.yaml: m"},
		{config.Error{Msg: "m"}, "<system>: m"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestClientsBlock(t *testing.T) {
	src := `system: s
secret: 0123456789abcdef0123
groups:
  - name: gate
    visibility: external
    clients:
      path: /play
      maxMessageBytes: 512
      rate: 10
      readTimeout: 2s
  - name: in
    visibility: internal
`
	sys, err := config.Parse("cluster.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	c := sys.Groups[0].Clients
	if c.Path != "/play" || c.MaxMessageBytes != 512 || c.Rate != 10 || c.Burst != 20 || c.ReadTimeout.Duration() != 2*time.Second ||
		c.MaxClients != config.DefaultMaxClients || c.SendQueueBytes != config.DefaultSendQueueBytes || c.WriteTimeout != config.DefaultClientWriteTimeout ||
		c.DrainTimeout != config.DefaultClientDrainTimeout {
		t.Fatalf("clients = %+v", c)
	}
	if d := sys.Groups[1].Clients; d.Path != "/" || d.Rate != config.DefaultClientRate {
		t.Fatalf("defaults = %+v", d)
	}
	// An explicit 0s is kept: no wait.
	zero, err := config.Parse("cluster.yaml", []byte("system: s\nsecret: 0123456789abcdef0123\ngroups:\n  - name: x\n    visibility: external\n    clients:\n      drainTimeout: 0s\n"), func(string) (string, bool) { return "", false })
	if err != nil || zero.Groups[0].Clients.DrainTimeout != 0 {
		t.Fatalf("drainTimeout: 0s gave %v, %v", zero, err)
	}
	bad := []struct{ src, want string }{
		{"  - name: x\n    visibility: internal\n    clients:\n      rate: 5\n", `cluster.yaml:6: group "x": clients: only external groups`},
		{"  - name: x\n    visibility: external\n    clients:\n      rate: 0\n", `cluster.yaml:7: group "x": clients: rate 0 must be at least 1`},
		{"  - name: x\n    visibility: external\n    clients:\n      sped: 0\n", `cluster.yaml:7: group "x": clients: unknown key "sped"`},
		{"  - name: x\n    visibility: external\n    clients:\n      path: play\n", `path "play" must start with '/'`},
		{"  - name: x\n    visibility: external\n    clients:\n      path: /servers\n", `path "/servers" is the group directory's`},
		{"  - name: x\n    visibility: external\n    clients:\n      drainTimeout: -1s\n", `cluster.yaml:7: group "x": clients: drainTimeout "-1s" must not be negative`},
		{"  - name: x\n    visibility: external\n    clients:\n      drainTimeout: 30\n", `cluster.yaml:7:`},
	}
	for _, b := range bad {
		_, err := config.Parse("cluster.yaml", []byte("system: s\nsecret: 0123456789abcdef0123\ngroups:\n"+b.src), func(string) (string, bool) { return "", false })
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("err = %v, want %q", err, b.want)
		}
	}
}
