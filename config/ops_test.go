package config_test

import (
	"strings"
	"testing"

	"github.com/cloudrift/cloudrift/config"
)

const opsHead = `system: s
secret: abcdefghijklmnopqrstuvwxyz012345
registry: {type: memory}
groups:
  - name: edge
    visibility: external
`

func TestOpsBlockDecodes(t *testing.T) {
	env := map[string]string{"OPS_TOKEN": "t0ken"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	sys, err := config.Parse("c.yaml", []byte(opsHead+"    ops: {listen: \"127.0.0.1:9100\", pprof: true, token: \"${OPS_TOKEN}\"}\n"), lookup)
	if err != nil {
		t.Fatal(err)
	}
	o := sys.Groups[0].Ops
	if o.Listen != "127.0.0.1:9100" || !o.Pprof || o.Token != "t0ken" {
		t.Fatalf("ops = %+v", o)
	}
}

func TestOpsDefaultsToLoopback(t *testing.T) {
	sys, err := config.Parse("c.yaml", []byte(opsHead), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := sys.Groups[0].Ops; got.Listen != config.DefaultListen || got.Pprof {
		t.Fatalf("ops = %+v", got)
	}
}

func TestOpsErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct{ block, want string }{
		{"    ops: {listen: nowhere}\n", `c.yaml:7`},
		{"    ops: {pprof: maybe}\n", `c.yaml:7`},
		{"    ops: {port: 9}\n", `unknown key "port"`},
	} {
		_, err := config.Parse("c.yaml", []byte(opsHead+tc.block), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.block, err, tc.want)
		}
	}
}
