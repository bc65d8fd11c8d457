package consul_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/registry"
	"github.com/cloudrift/cloudrift/registry/consul"
)

func spec(t *testing.T, settings string) registry.Spec {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(settings), &doc); err != nil {
		t.Fatal(err)
	}
	s := registry.Spec{Type: consul.Type, File: "c.yaml", Line: 3}
	if len(doc.Content) == 1 {
		s.Settings = *doc.Content[0]
	}
	return s
}

func TestSettingsOpen(t *testing.T) {
	c, err := registry.Open(spec(t, "address: 127.0.0.1:1\nttl: 2s\n"), registry.Options{System: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if a := c.(*consul.Connector).Address(); !strings.Contains(a, "127.0.0.1:1") {
		t.Errorf("Address = %q", a)
	}
}

func TestSettingsRejected(t *testing.T) {
	for _, c := range []struct{ name, settings, want string }{
		{"unknown key", "ttl: 2s\nadress: x\n", `c.yaml:1: registry "consul": registry: bad registry settings: line 2: unknown key "adress" (did you mean "address"?)`},
		{"unknown tls key", "tls: {caFiel: x}\n", `unknown key "caFiel" in tls (did you mean "caFile"?)`},
		{"repeated key", "ttl: 2s\nttl: 3s\n", `line 2: key "ttl" repeated (first at line 1)`},
		{"duration without unit", "ttl: 5\n", "line 1"},
		{"scheme", "scheme: ftp\n", `scheme "ftp"`},
		{"ttl", "ttl: 500ms\n", "ttl 500ms is below the minimum of 1s"},
		{"deregisterAfter", "deregisterAfter: 30s\n", "deregisterAfter 30s is below"},
		{"cert without key", "tls: {certFile: /c.pem}\n", `certFile "/c.pem" and keyFile ""`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := registry.Check(spec(t, c.settings))
			if !errors.Is(err, registry.ErrSettings) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Check = %v, want ErrSettings containing %q", err, c.want)
			}
		})
	}
}

func TestSettingsConfig(t *testing.T) {
	s := consul.Settings{Token: "t", TTL: 2 * time.Second, TLS: consul.SettingsTLS{CAPath: "/ca"}}
	cfg := s.Config(registry.Options{System: "sys"})
	if cfg.System != "sys" || cfg.Token != "t" || cfg.TTL != 2*time.Second || cfg.TLS.CAPath != "/ca" {
		t.Errorf("Config = %+v", cfg)
	}
}
