package cli

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// strongTestSecret stands in for a generated secret (openssl rand -hex 32).
const strongTestSecret = "5f0c9a7e2b4d6f8a1c3e5a7b9d0f2e4c6a8b0d2f4e6a8c0b2d4f6e8a0c2b4d6f"

// The repository's system file takes its secret from CLOUDRIFT_SECRET and
// falls back to the example's, which `run` refuses: the tests of this
// package that run it get a generated-looking one.
func init() { os.Setenv("CLOUDRIFT_SECRET", strongTestSecret) }

func TestCheckSecret(t *testing.T) {
	for secret, ok := range map[string]bool{
		strongTestSecret:                        true,
		"0f1e2d3c4b5a69788796a5b4c3d2e1f0":      true, // 32 hex digits: 128 bits
		"q0bR3n+7vXkP9sYw2LmA1cZe4HtU6jGd8Fo5=": true, // base64 of random bytes
		"dev-only-secret-change-me":             false,
		"change-me-to-at-least-16-random-bytes": false,
		strings.Repeat("a", 64):                 false,
		strings.Repeat("abcd", 16):              false,
		"passwordpassword":                      false,
		"0f1e2d3c4b5a6978":                      false, // 64 bits
		"":                                      false,
	} {
		err := checkSecret(secret)
		if (err == nil) != ok {
			t.Errorf("checkSecret(%q) = %v, want ok %v", secret, err, ok)
		}
		if err != nil && (!errors.Is(err, errWeakSecret) || secret != "" && strings.Contains(err.Error(), secret)) {
			t.Errorf("checkSecret(%q) = %v: want errWeakSecret, not quoting the secret", secret, err)
		}
	}
}

func TestRunRefusesDefaultSecret(t *testing.T) {
	t.Setenv("CLOUDRIFT_SECRET", "") // the file's default applies
	code, _, errOut := runSync(t, "run", "-config", repoFile, "-group", "world", "-log-level", "disabled")
	if code != exitFail {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitFail, errOut)
	}
	if !strings.Contains(errOut, "openssl rand -hex 32") || strings.Contains(errOut, "dev-only-secret-change-me") {
		t.Fatalf("stderr should say how to make a secret without quoting the old one:\n%s", errOut)
	}
}

func TestDevAcceptsDefaultSecret(t *testing.T) {
	path := writeFile(t, "dev.yaml", `system: devsecret
secret: dev-only-secret-change-me
groups:
  - name: world
    visibility: internal
`)
	c := start(t, "dev", "-config", path, "-interval", "100ms")
	c.Match(t, &c.Stdout, allUp)
	if code := c.Stop(t); code != 0 {
		t.Errorf("exit %d after cancel, want 0; stderr:\n%s", code, &c.Stderr)
	}
}
