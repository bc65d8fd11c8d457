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
			ctx := key
			d.errorf(n, ctx, "%v", err)
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

// expand substitutes ${VAR}, ${VAR:-default} and $$ in s. Substituted text is
// not expanded again; a $ not followed by { or $ is kept.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
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
				return "", fmt.Errorf("unterminated \"${\": write ${VAR}, or $$ for a literal $")
			}
			body := s[i+2 : i+2+end]
			name, def, hasDef := strings.Cut(body, ":-")
			if !isVarName(name) {
				return "", fmt.Errorf("bad variable reference %q: write ${VAR} or ${VAR:-default}", "${"+body+"}")
			}
			v, ok := lookup(name)
			switch {
			case hasDef && v == "":
				v = def
			case !ok:
				return "", fmt.Errorf("environment variable %q is not set (use ${%s:-default} for a default)", name, name)
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
