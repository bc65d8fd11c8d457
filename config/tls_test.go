package config_test

import (
	"strings"
	"testing"

	"github.com/cloudrift/cloudrift/config"
)

func TestTLSBlocks(t *testing.T) {
	src := `system: s
secret: 0123456789abcdef0123
links:
  tls:
    certFile: link.pem
    keyFile: link-key.pem
    caFile: ca.pem
groups:
  - name: gate
    visibility: external
    clients:
      tls: {certFile: wss.pem, keyFile: wss-key.pem}
  - name: in
    visibility: internal
`
	noEnv := func(string) (string, bool) { return "", false }
	sys, err := config.Parse("cluster.yaml", []byte(src), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if l := sys.Links.TLS; l.CertFile != "link.pem" || l.KeyFile != "link-key.pem" || l.CAFile != "ca.pem" || !l.Enabled() {
		t.Fatalf("links.tls = %+v", l)
	}
	if c := sys.Groups[0].Clients.TLS; c.CertFile != "wss.pem" || c.KeyFile != "wss-key.pem" || !c.Enabled() {
		t.Fatalf("clients.tls = %+v", c)
	}
	if sys.Groups[1].Clients.TLS.Enabled() {
		t.Fatal("a group without clients.tls has TLS")
	}

	const head = "system: s\nsecret: 0123456789abcdef0123\n"
	const groups = "groups:\n  - name: x\n    visibility: external\n"
	bad := []struct{ src, want string }{
		{head + "links:\n  tls:\n    certFile: a.pem\n    keyFile: a-key.pem\n" + groups,
			`cluster.yaml:4: links: tls: missing "caFile"`},
		{head + "links:\n  tls:\n    certFile: a.pem\n    caFile: ca.pem\n" + groups,
			`cluster.yaml:4: links: tls: missing "keyFile"`},
		{head + "links:\n  tls:\n    certFlie: a.pem\n" + groups,
			`cluster.yaml:5: links: tls: unknown key "certFlie"`},
		{head + "links:\n  tls: {}\n" + groups,
			`cluster.yaml:4: links: tls: missing "certFile"`},
		{head + groups + "    clients:\n      tls:\n        keyFile: k.pem\n",
			`cluster.yaml:7: group "x": clients: tls: missing "certFile"`},
		{head + groups + "    clients:\n      tls:\n        certFile: c.pem\n        keyFile: k.pem\n        caFile: ca.pem\n",
			`cluster.yaml:10: group "x": clients: tls: caFile "ca.pem": game clients present no certificate`},
	}
	for _, b := range bad {
		_, err := config.Parse("cluster.yaml", []byte(b.src), noEnv)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("err = %v, want %q", err, b.want)
		}
	}
}
