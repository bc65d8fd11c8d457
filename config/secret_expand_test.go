package config

import (
	"slices"
	"strings"
	"testing"
)

// TestExpandErrorsHideSecrets checks that an expansion error in a secret
// quotes nothing written next to the reference, while one that is only a
// reference still names its variable.
func TestExpandErrorsHideSecrets(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	for _, value := range []string{
		"hunter2-hunter2-hunter2${UNSET_VAR}",
		"${UNSET_VAR}hunter2-hunter2-hunter2",
		"${1BAD:-hunter2-hunter2-hunter2}",
		"${hunter2 hunter2}",
		"hunter2-hunter2${",
	} {
		src := "system: s\nsecret: \"" + value + "\"\ngroups:\n  - {name: g, visibility: internal}\n"
		_, err := Parse("c.yaml", []byte(src), none)
		if err == nil {
			t.Fatalf("%q: no error", value)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error quotes the secret: %v", err)
		}
	}
	src := "system: s\nsecret: ${UNSET_VAR}\ngroups:\n  - {name: g, visibility: internal}\n"
	if _, err := Parse("c.yaml", []byte(src), none); err == nil || !strings.Contains(err.Error(), `"UNSET_VAR"`) {
		t.Errorf("a whole reference's error should name the variable: %v", err)
	}
}

func TestAllowedOrigins(t *testing.T) {
	src := `system: s
secret: 0123456789abcdef0123456789abcdef
groups:
  - name: g
    visibility: external
    clients: {allowedOrigins: ["https://a.example", "*"]}
`
	sys, err := Parse("c.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := sys.Groups[0].Clients.AllowedOrigins; !slices.Equal(got, []string{"https://a.example", "*"}) {
		t.Fatalf("allowedOrigins %q", got)
	}
}
