package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// expandTree expands ${VAR} in every scalar value under n (mapping keys are
// left alone). key is the nearest mapping key, for messages. Alias nodes are
// skipped: their anchor is expanded where it is defined, exactly once.
// A plain scalar is re-typed after expansion; a scalar that fails is recorded
// in d.failed so decoding does not report it a second time.
func (d *decoder) expandTree(n *yaml.Node, key string, lookup func(string) (string, bool)) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			d.expandTree(c, key, lookup)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			d.expandTree(n.Content[i+1], n.Content[i].Value, lookup)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		v, err := expand(n.Value, lookup)
		if err != nil {
			msg := err.full
			if sensitiveKey(key) && (err.badName || !wholeReference(n.Value)) {
				msg = err.redacted // the message would quote part of a secret
			}
			d.errorf(n, key, "%s", msg)
			d.failed[n] = true
			return
		}
		n.Value = v
		if n.Style == 0 { // plain and untagged: type it as written now
			n.Tag = ""
			n.Tag = n.ShortTag()
		}
	}
}

// expandError is a failed expansion, in two wordings: full names the
// offending reference; redacted says where it is (a byte offset) and
// quotes nothing of the value, for values that are secrets: a secret
// written next to a ${...} must not reach a log through its error.
type expandError struct {
	full, redacted string
	badName        bool // full quotes a reference whose name is not valid
}

func expandErr(at int, redacted, format string, args ...any) *expandError {
	return &expandError{
		full:     fmt.Sprintf(format, args...),
		redacted: fmt.Sprintf("at byte %d: %s (the value is not shown: it may be a secret)", at, redacted),
	}
}

// wholeReference reports whether v is one ${...} reference and nothing
// else, so that naming the variable quotes nothing written next to it.
func wholeReference(v string) bool {
	return strings.HasPrefix(v, "${") && strings.IndexByte(v, '}') == len(v)-1
}

// sensitiveKey reports whether values under key may be secrets, whose text
// expansion errors must not quote.
func sensitiveKey(key string) bool {
	k := strings.ToLower(key)
	for _, w := range []string{"secret", "password", "token", "key", "credential"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// expand substitutes ${VAR}, ${VAR:-default} and $$ in s. Substituted text is
// not expanded again; a $ not followed by { or $ is kept.
func expand(s string, lookup func(string) (string, bool)) (string, *expandError) {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			i++
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i += 2
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", expandErr(i, `unterminated "${"`, `unterminated "${": write ${VAR}, or $$ for a literal $`)
			}
			body := s[i+2 : i+2+end]
			name, def, hasDef := strings.Cut(body, ":-")
			if !isVarName(name) {
				e := expandErr(i, "bad variable reference",
					"bad variable reference %q: write ${VAR} or ${VAR:-default}", "${"+name+"}")
				e.badName = true
				return "", e
			}
			v, ok := lookup(name)
			switch {
			case hasDef && v == "":
				v = def
			case !ok:
				return "", expandErr(i, "an environment variable it names is not set",
					"environment variable %q is not set (use ${%s:-default} for a default)", name, name)
			}
			b.WriteString(v)
			i += 2 + end + 1
		default:
			b.WriteByte('$')
			i++
		}
	}
	return b.String(), nil
}

// isVarName reports whether s is [A-Za-z_][A-Za-z0-9_]*.
func isVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
