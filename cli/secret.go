package cli

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode"

	"github.com/cloudrift/cloudrift/config"
)

// The secret check of `cloudrift run`. The link handshake makes the secret
// the only thing between a stranger and the cluster, and whoever obtains
// one handshake MAC (by posing as a server the registry lists) can test
// guesses offline at any speed: a guessable secret is as good as none.
// `cloudrift dev` runs on loopback and keeps accepting the example's.

// minSecretBits is the least estimated strength `run` accepts: what
// `openssl rand -hex 32` gives with room to spare (256 bits), and 32 hex
// digits exactly.
const minSecretBits = 128

// minDistinctRunes rejects secrets made of a few characters repeated.
const minDistinctRunes = 8

// knownSecrets are placeholder secrets shipped in this repository's
// examples and manifests: public, so never acceptable in production.
var knownSecrets = []string{
	"dev-only-secret-change-me",
	"change-me-to-at-least-16-random-bytes",
}

// errWeakSecret is wrapped by checkSecret for a secret `run` refuses.
var errWeakSecret = errors.New("the system secret is too weak for production")

// checkSecret returns nil for a secret strong enough to run with, and an
// error wrapping errWeakSecret saying why otherwise. The error never
// quotes the secret.
func checkSecret(secret string) error {
	for _, k := range knownSecrets {
		if secret == k {
			return fmt.Errorf("%w: it is the example's default, which anyone can read", errWeakSecret)
		}
	}
	distinct := map[rune]bool{}
	for _, r := range secret {
		distinct[r] = true
	}
	if len(distinct) < minDistinctRunes {
		return fmt.Errorf("%w: it repeats %d distinct characters, want at least %d", errWeakSecret, len(distinct), minDistinctRunes)
	}
	if bits := secretBits(secret); bits < minSecretBits {
		return fmt.Errorf("%w: about %d bits of entropy, want at least %d", errWeakSecret, int(bits), minSecretBits)
	}
	return nil
}

// secretBits estimates a secret's strength as if each character were drawn
// at random from the classes it uses (lower case, upper case, digits,
// other ASCII, non-ASCII): an upper bound for a chosen phrase, about right
// for the output of a random generator, which is what the check asks for.
func secretBits(secret string) float64 {
	var lower, upper, digit, other, wide bool
	n := 0
	for _, r := range secret {
		n++
		switch {
		case r > unicode.MaxASCII:
			wide = true
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= '0' && r <= '9':
			digit = true
		default:
			other = true
		}
	}
	pool := 0
	for _, c := range []struct {
		used bool
		size int
	}{{lower, 26}, {upper, 26}, {digit, 10}, {other, 33}, {wide, 128}} {
		if c.used {
			pool += c.size
		}
	}
	if pool < 2 {
		return 0
	}
	return float64(n) * math.Log2(float64(pool))
}

// weakSecret reports, on stderr, a system file whose secret run must
// refuse, and tells the operator how to make a good one.
func (e *env) weakSecret(path string, sys *config.System) bool {
	err := checkSecret(sys.Secret)
	if err == nil {
		return false
	}
	fmt.Fprintf(e.stderr, "%s: %s: %v.\n%s\n", e.prog, path, err, strings.Join([]string{
		"Generate a secret with",
		"    openssl rand -hex 32",
		"and give every server of the system the same one (for example in CLOUDRIFT_SECRET,",
		"when the system file says secret: ${CLOUDRIFT_SECRET}). `cloudrift dev` accepts any secret.",
	}, "\n"))
	return true
}
