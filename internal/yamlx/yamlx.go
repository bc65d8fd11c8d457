// Package yamlx holds cloudrift's one set of strict YAML rules, shared by the
// system file (package config), plugin settings (package plugins) and
// registry connector settings (package registry): a mapping's keys are
// strings, none repeats, merge keys ("<<: *base") bring in the keys the
// mapping lacks, and a key the reader does not know is an error naming its
// line and the closest known key.
package yamlx

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Resolve follows an alias to the node it names.
func Resolve(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// IsNull reports whether n is a null scalar ("~", "null" or nothing).
func IsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// IsAbsent reports whether n holds nothing to decode: a zero node (the key
// was not written) or null.
func IsAbsent(n *yaml.Node) bool {
	return n.Kind == 0 || IsNull(Resolve(n))
}

// KindName describes a node's kind for messages: "a mapping", "a list",
// "the number \"3\"", ...
func KindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!int", "!!float":
			return "the number " + strconv.Quote(n.Value)
		case "!!bool":
			return "the boolean " + strconv.Quote(n.Value)
		}
		return "the string " + strconv.Quote(n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

// UnknownKey is the message for an unknown key k, suggesting the closest of
// known: `unknown key "adress" (did you mean "address"?)`.
func UnknownKey(k string, known []string) string {
	msg := "unknown key " + strconv.Quote(k)
	if s := Suggest(k, known); s != "" {
		msg += " (did you mean " + strconv.Quote(s) + "?)"
	}
	return msg
}

// Suggest returns the known key closest to k (case-insensitive equal, or
// within two edits), or "".
func Suggest(k string, known []string) string {
	best, bestDist := "", 3
	for _, c := range known {
		if strings.EqualFold(c, k) {
			return c
		}
		if dist := editDistance(strings.ToLower(k), strings.ToLower(c)); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
