package yamlx

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// Field is one key and its value in a mapping.
type Field struct{ Key, Val *yaml.Node }

// Problem is a rule broken at Node; Msg does not repeat the line.
type Problem struct {
	Node *yaml.Node
	Msg  string
}

// Fields returns the key/value pairs of mapping n in file order, then the
// pairs merge keys bring in ("<<: *base"; explicit keys win, earlier merged
// mappings win over later ones). A repeated key, a non-string key or a
// merge of something other than mappings is a Problem. A null n is an empty
// mapping; any other non-mapping is a Problem.
func Fields(n *yaml.Node) ([]Field, []Problem) {
	n = Resolve(n)
	if n == nil || n.Kind == 0 || IsNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, []Problem{{n, "want a mapping, got " + KindName(n)}}
	}
	var out, merged []Field
	var probs []Problem
	seen := map[string]*yaml.Node{}
	visited := map[*yaml.Node]bool{n: true}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, merge(v, visited, &probs)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			probs = append(probs, Problem{k, "a key must be a string, got " + KindName(k)})
			continue
		}
		if first, dup := seen[k.Value]; dup {
			probs = append(probs, Problem{k, fmt.Sprintf("key %q repeated (first at line %d)", k.Value, first.Line)})
			continue
		}
		seen[k.Value] = k
		out = append(out, Field{k, v})
	}
	for _, f := range merged {
		if seen[f.Key.Value] == nil {
			seen[f.Key.Value] = f.Key
			out = append(out, f)
		}
	}
	return out, probs
}

// merge returns the fields a merge key brings in: one mapping or a list of
// mappings, earlier ones winning. Each mapping is visited once.
func merge(v *yaml.Node, visited map[*yaml.Node]bool, probs *[]Problem) []Field {
	v = Resolve(v)
	var maps []*yaml.Node
	switch v.Kind {
	case yaml.MappingNode:
		maps = []*yaml.Node{v}
	case yaml.SequenceNode:
		for _, c := range v.Content {
			maps = append(maps, Resolve(c))
		}
	}
	var out []Field
	seen := map[string]bool{}
	for _, m := range maps {
		if m.Kind != yaml.MappingNode {
			*probs = append(*probs, Problem{m, "a merge key (<<) takes a mapping or a list of mappings, got " + KindName(m)})
			continue
		}
		if visited[m] {
			continue
		}
		visited[m] = true
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, val := m.Content[i], m.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				for _, f := range merge(val, visited, probs) {
					if !seen[f.Key.Value] {
						seen[f.Key.Value] = true
						out = append(out, f)
					}
				}
				continue
			}
			if k.Kind == yaml.ScalarNode && !seen[k.Value] {
				seen[k.Value] = true
				out = append(out, Field{k, val})
			}
		}
	}
	return out
}
