package web_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloudrift/cloudrift/internal/browsertest"
)

// TestEmbeddedSDK checks that static/sdk holds what tsc makes of
// sdk/typescript now: run go generate ./examples/openworld/web after
// changing the SDK.
func TestEmbeddedSDK(t *testing.T) {
	fresh := browsertest.BuildSDK(t, "../../../sdk/typescript")
	want, err := filepath.Glob(filepath.Join(fresh, "*.js"))
	if err != nil {
		t.Fatal(err)
	}
	have, err := filepath.Glob(filepath.Join("static", "sdk", "*.js"))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 || len(have) != len(want) {
		t.Fatalf("static/sdk has %d modules, tsc makes %d: run go generate ./examples/openworld/web", len(have), len(want))
	}
	for _, w := range want {
		name := filepath.Base(w)
		a, err := os.ReadFile(w)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join("static", "sdk", name))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("static/sdk/%s is not what tsc makes of the SDK now (%v): run go generate ./examples/openworld/web", name, err)
		}
	}
}
