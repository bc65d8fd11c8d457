package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/internal/yamlx"
)

// mark is where a decoded value came from. bad is set when the value was
// present but could not be decoded (already reported), so the checker does
// not report it again as missing or out of range.
type mark struct {
	line, col int
	bad       bool
}

// positions maps a field path ("links.timeout", "groups.2.connectsTo.1") to
// the position of its value in the file. A nil positions (a System built in
// Go) knows nothing.
type positions map[string]mark

func (p positions) has(path string) bool { _, ok := p[path]; return ok }
func (p positions) bad(path string) bool { return p[path].bad }

// at returns the position of path, or fallback as the line when unknown.
func (p positions) at(path string, fallback int) (line, col int) {
	if m, ok := p[path]; ok {
		return m.line, m.col
	}
	return fallback, 0
}

// decoder walks a yaml.Node tree into a System, strictly: unknown keys,
// repeated keys and wrong kinds are errors with positions.
type decoder struct {
	file   string
	errs   []*Error
	pos    positions
	failed map[*yaml.Node]bool // scalars whose ${VAR} expansion failed
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, pos: positions{}, failed: map[*yaml.Node]bool{}}
}

// errorf records a problem at n. ctx ("group \"client\"") prefixes the message.
func (d *decoder) errorf(n *yaml.Node, ctx, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if ctx != "" {
		msg = ctx + ": " + msg
	}
	e := &Error{File: d.file, Msg: msg}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

func (d *decoder) result() error { return joinErrors(d.errs) }

// joinErrors orders errs by line (stable) and joins them; nil when empty.
func joinErrors(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

// parse reads exactly one YAML document whose root is a mapping.
func (d *decoder) parse(data []byte) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errorf(nil, "", "the file is empty")
		} else {
			d.syntaxError(err, data)
		}
		return nil, false
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntaxError(err, data)
		return nil, false
	default:
		d.errorf(&extra, "", "a second YAML document: a system file holds one")
		return nil, false
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.AliasNode {
		root = root.Alias
	}
	if root.Kind != yaml.MappingNode {
		d.errorf(root, "", "the file holds %s, want a mapping with system, secret and groups", yamlx.KindName(root))
		return nil, false
	}
	return root, true
}

// syntaxError records a yaml.v3 parse error with a 1-based line.
func (d *decoder) syntaxError(err error, data []byte) {
	line, msg := yamlx.SyntaxError(err, data)
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Msg: "YAML syntax: " + msg})
}

// fields returns the key/value pairs of mapping n by yamlx.Fields (merge
// keys followed), recording its problems with ctx.
func (d *decoder) fields(n *yaml.Node, ctx string) []yamlx.Field {
	fs, probs := yamlx.Fields(n)
	for _, p := range probs {
		d.errorf(p.Node, ctx, "%s", p.Msg)
	}
	return fs
}

// unknown reports key k as unknown, suggesting the closest known key.
func (d *decoder) unknown(k *yaml.Node, ctx string, known []string) {
	d.errorf(k, ctx, "%s", yamlx.UnknownKey(k.Value, known))
}

// scalar returns the scalar value node of f, marking path. It returns nil
// (marking path bad where a problem was reported) when the value is null,
// not a scalar, or failed expansion.
func (d *decoder) scalar(f yamlx.Field, ctx, path string) *yaml.Node {
	v := yamlx.Resolve(f.Val)
	if d.failed[v] {
		d.pos[path] = mark{v.Line, v.Column, true}
		return nil
	}
	if yamlx.IsNull(v) {
		return nil
	}
	if v.Kind != yaml.ScalarNode {
		d.errorf(v, ctx, "%s: want a single value, got %s", f.Key.Value, yamlx.KindName(v))
		d.pos[path] = mark{v.Line, v.Column, true}
		return nil
	}
	d.pos[path] = mark{line: v.Line, col: v.Column}
	return v
}

func (d *decoder) badAt(path string, v *yaml.Node) {
	d.pos[path] = mark{v.Line, v.Column, true}
}

// str decodes a string; any scalar is taken as written.
func (d *decoder) str(f yamlx.Field, ctx, path string) string {
	if v := d.scalar(f, ctx, path); v != nil {
		return v.Value
	}
	return ""
}

// integer decodes an int.
func (d *decoder) integer(f yamlx.Field, ctx, path string) int {
	v := d.scalar(f, ctx, path)
	if v == nil {
		return 0
	}
	var n int
	if v.ShortTag() != "!!int" || v.Decode(&n) != nil {
		d.errorf(v, ctx, "%s %q is not an integer", f.Key.Value, v.Value)
		d.badAt(path, v)
		return 0
	}
	return n
}

// boolean decodes a bool.
func (d *decoder) boolean(f yamlx.Field, ctx, path string) bool {
	v := d.scalar(f, ctx, path)
	if v == nil {
		return false
	}
	var b bool
	if v.ShortTag() != "!!bool" || v.Decode(&b) != nil {
		d.errorf(v, ctx, "%s %q is not true or false", f.Key.Value, v.Value)
		d.badAt(path, v)
		return false
	}
	return b
}

// duration decodes a Duration.
func (d *decoder) duration(f yamlx.Field, ctx, path string) Duration {
	v := d.scalar(f, ctx, path)
	if v == nil {
		return 0
	}
	dur, msg := parseDuration(v)
	if msg != "" {
		d.errorf(v, ctx, "%s %s", f.Key.Value, msg)
		d.badAt(path, v)
		return 0
	}
	return dur
}

// parseDuration parses a duration scalar; msg describes the problem
// starting with the quoted value.
func parseDuration(v *yaml.Node) (Duration, string) {
	if v.Kind != yaml.ScalarNode {
		return 0, fmt.Sprintf("is %s, want a duration like \"5s\"", yamlx.KindName(v))
	}
	switch v.ShortTag() {
	case "!!int", "!!float":
		return 0, fmt.Sprintf("%q: durations need a unit, e.g. \"5s\"", v.Value)
	}
	t, err := time.ParseDuration(v.Value)
	if err != nil {
		return 0, fmt.Sprintf("%q is not a duration like \"5s\" or \"250ms\"", v.Value)
	}
	return Duration(t), ""
}

// list returns the items of a sequence value, or nil (reporting a non-list).
func (d *decoder) list(f yamlx.Field, ctx, path string) []*yaml.Node {
	v := yamlx.Resolve(f.Val)
	if yamlx.IsNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		d.errorf(v, ctx, "%s: want a list, got %s", f.Key.Value, yamlx.KindName(v))
		d.badAt(path, v)
		return nil
	}
	d.pos[path] = mark{line: v.Line, col: v.Column}
	return v.Content
}
