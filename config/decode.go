package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
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

type field struct{ key, val *yaml.Node }

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

var yamlLine = regexp.MustCompile(`^line (\d+): `)

// parserProblems are the messages of yaml.v3's parser (as opposed to its
// scanner). yaml.v3 v3.0.1 prints a parser error's line 0-based (and it is
// the line where the enclosing block starts when that is not the first
// line), and prints no line at all for a problem on the first line.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

var unknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

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
		d.errorf(root, "", "the file holds %s, want a mapping with system, secret and groups", kindName(root))
		return nil, false
	}
	return root, true
}

// syntaxError converts a yaml.v3 error ("yaml: line 3: ...") to an *Error
// with a 1-based line.
func (d *decoder) syntaxError(err error, data []byte) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	switch {
	case parserProblems[msg]:
		line++
	case unknownAnchor.MatchString(msg):
		// The composer names no line: find the first use of the alias.
		name := unknownAnchor.FindStringSubmatch(msg)[1]
		if i := bytes.Index(data, []byte("*"+name)); i >= 0 {
			line = bytes.Count(data[:i], []byte("\n")) + 1
		}
	case line == 0:
		line = 1 // a scanner problem on the first line
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Msg: "YAML syntax: " + msg})
}

// kindName describes a node's kind for messages.
func kindName(n *yaml.Node) string {
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

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// fields returns the key/value pairs of mapping n (ctx prefixes messages),
// following merge keys
// ("<<: *base", explicit keys win) and reporting repeated keys. A null n is
// an empty mapping; any other non-mapping is an error.
func (d *decoder) fields(n *yaml.Node, ctx string) []field {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, ctx, "want a mapping, got %s", kindName(n))
		return nil
	}
	var out []field
	seen := map[string]*yaml.Node{}
	var merged []field
	visited := map[*yaml.Node]bool{n: true}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.merge(v, ctx, visited)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, ctx, "a key must be a string, got %s", kindName(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, ctx, "key %q repeated (first at line %d)", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, field{k, v})
	}
	for _, f := range merged {
		if seen[f.key.Value] == nil {
			seen[f.key.Value] = f.key
			out = append(out, f)
		}
	}
	return out
}

// merge returns the fields a merge key brings in: one mapping or a list of
// mappings, earlier ones winning. Each mapping is visited once.
func (d *decoder) merge(v *yaml.Node, ctx string, visited map[*yaml.Node]bool) []field {
	v = resolve(v)
	var maps []*yaml.Node
	switch v.Kind {
	case yaml.MappingNode:
		maps = []*yaml.Node{v}
	case yaml.SequenceNode:
		for _, c := range v.Content {
			maps = append(maps, resolve(c))
		}
	}
	var out []field
	seen := map[string]bool{}
	for _, m := range maps {
		if m.Kind != yaml.MappingNode {
			d.errorf(m, ctx, "a merge key (<<) takes a mapping or a list of mappings, got %s", kindName(m))
			continue
		}
		if visited[m] {
			continue
		}
		visited[m] = true
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, val := m.Content[i], m.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				for _, f := range d.merge(val, ctx, visited) {
					if !seen[f.key.Value] {
						seen[f.key.Value] = true
						out = append(out, f)
					}
				}
				continue
			}
			if k.Kind == yaml.ScalarNode && !seen[k.Value] {
				seen[k.Value] = true
				out = append(out, field{k, val})
			}
		}
	}
	return out
}

// unknown reports key k as unknown, suggesting the closest known key.
func (d *decoder) unknown(k *yaml.Node, ctx string, known []string) {
	msg := fmt.Sprintf("unknown key %q", k.Value)
	if s := suggest(k.Value, known); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	d.errorf(k, ctx, "%s", msg)
}

// scalar returns the scalar value node of f, marking path. It returns nil
// (marking path bad where a problem was reported) when the value is null,
// not a scalar, or failed expansion.
func (d *decoder) scalar(f field, ctx, path string) *yaml.Node {
	v := resolve(f.val)
	if d.failed[v] {
		d.pos[path] = mark{v.Line, v.Column, true}
		return nil
	}
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.ScalarNode {
		d.errorf(v, ctx, "%s: want a single value, got %s", f.key.Value, kindName(v))
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
func (d *decoder) str(f field, ctx, path string) string {
	if v := d.scalar(f, ctx, path); v != nil {
		return v.Value
	}
	return ""
}

// integer decodes an int.
func (d *decoder) integer(f field, ctx, path string) int {
	v := d.scalar(f, ctx, path)
	if v == nil {
		return 0
	}
	var n int
	if v.ShortTag() != "!!int" || v.Decode(&n) != nil {
		d.errorf(v, ctx, "%s %q is not an integer", f.key.Value, v.Value)
		d.badAt(path, v)
		return 0
	}
	return n
}

// boolean decodes a bool.
func (d *decoder) boolean(f field, ctx, path string) bool {
	v := d.scalar(f, ctx, path)
	if v == nil {
		return false
	}
	var b bool
	if v.ShortTag() != "!!bool" || v.Decode(&b) != nil {
		d.errorf(v, ctx, "%s %q is not true or false", f.key.Value, v.Value)
		d.badAt(path, v)
		return false
	}
	return b
}

// duration decodes a Duration.
func (d *decoder) duration(f field, ctx, path string) Duration {
	v := d.scalar(f, ctx, path)
	if v == nil {
		return 0
	}
	dur, msg := parseDuration(v)
	if msg != "" {
		d.errorf(v, ctx, "%s %s", f.key.Value, msg)
		d.badAt(path, v)
		return 0
	}
	return dur
}

// parseDuration parses a duration scalar; msg describes the problem
// starting with the quoted value.
func parseDuration(v *yaml.Node) (Duration, string) {
	if v.Kind != yaml.ScalarNode {
		return 0, fmt.Sprintf("is %s, want a duration like \"5s\"", kindName(v))
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
func (d *decoder) list(f field, ctx, path string) []*yaml.Node {
	v := resolve(f.val)
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		d.errorf(v, ctx, "%s: want a list, got %s", f.key.Value, kindName(v))
		d.badAt(path, v)
		return nil
	}
	d.pos[path] = mark{line: v.Line, col: v.Column}
	return v.Content
}

// system decodes the top-level mapping.
func (d *decoder) system(root *yaml.Node) *System {
	s := &System{File: d.file, Line: root.Line}
	d.pos[""] = mark{line: root.Line, col: root.Column}
	known := []string{"system", "secret", "registry", "links", "groups"}
	for _, f := range d.fields(root, "") {
		switch f.key.Value {
		case "system":
			s.System = d.str(f, "", "system")
		case "secret":
			s.Secret = d.str(f, "", "secret")
		case "registry":
			s.Registry = d.registry(f)
		case "links":
			s.Links = d.links(f)
		case "groups":
			s.Groups = d.groups(f)
		default:
			d.unknown(f.key, "", known)
		}
	}
	return s
}

func (d *decoder) registry(f field) Registry {
	const ctx = "registry"
	r := Registry{Line: resolve(f.val).Line}
	known := []string{"type", "consul"}
	for _, f := range d.fields(f.val, ctx) {
		switch f.key.Value {
		case "type":
			r.Type = d.str(f, ctx, "registry.type")
		case "consul":
			r.Consul = d.consul(f)
		default:
			d.unknown(f.key, ctx, known)
		}
	}
	return r
}

func (d *decoder) consul(f field) Consul {
	const ctx = "registry: consul"
	c := Consul{Line: resolve(f.val).Line}
	known := []string{"address", "token", "scheme", "datacenter", "ttl", "deregisterAfter", "tls"}
	for _, f := range d.fields(f.val, ctx) {
		p := "registry.consul." + f.key.Value
		switch f.key.Value {
		case "address":
			c.Address = d.str(f, ctx, p)
		case "token":
			c.Token = d.str(f, ctx, p)
		case "scheme":
			c.Scheme = d.str(f, ctx, p)
		case "datacenter":
			c.Datacenter = d.str(f, ctx, p)
		case "ttl":
			c.TTL = d.duration(f, ctx, p)
		case "deregisterAfter":
			c.DeregisterAfter = d.duration(f, ctx, p)
		case "tls":
			c.TLS = d.consulTLS(f)
		default:
			d.unknown(f.key, ctx, known)
		}
	}
	return c
}

func (d *decoder) consulTLS(f field) ConsulTLS {
	const ctx = "registry: consul: tls"
	var t ConsulTLS
	known := []string{"caFile", "certFile", "keyFile", "serverName", "insecureSkipVerify"}
	for _, f := range d.fields(f.val, ctx) {
		p := "registry.consul.tls." + f.key.Value
		switch f.key.Value {
		case "caFile":
			t.CAFile = d.str(f, ctx, p)
		case "certFile":
			t.CertFile = d.str(f, ctx, p)
		case "keyFile":
			t.KeyFile = d.str(f, ctx, p)
		case "serverName":
			t.ServerName = d.str(f, ctx, p)
		case "insecureSkipVerify":
			t.InsecureSkipVerify = d.boolean(f, ctx, p)
		default:
			d.unknown(f.key, ctx, known)
		}
	}
	return t
}

func (d *decoder) links(f field) Links {
	const ctx = "links"
	var l Links
	known := []string{"handshakeTimeout", "heartbeat", "timeout", "maxFrame", "queueBytes", "backoffMin", "backoffMax", "leaveGrace"}
	for _, f := range d.fields(f.val, ctx) {
		p := "links." + f.key.Value
		switch f.key.Value {
		case "handshakeTimeout":
			l.HandshakeTimeout = d.duration(f, ctx, p)
		case "heartbeat":
			l.Heartbeat = d.duration(f, ctx, p)
		case "timeout":
			l.Timeout = d.duration(f, ctx, p)
		case "maxFrame":
			l.MaxFrame = d.integer(f, ctx, p)
		case "queueBytes":
			l.QueueBytes = d.integer(f, ctx, p)
		case "backoffMin":
			l.BackoffMin = d.duration(f, ctx, p)
		case "backoffMax":
			l.BackoffMax = d.duration(f, ctx, p)
		case "leaveGrace":
			l.LeaveGrace = d.duration(f, ctx, p)
		default:
			d.unknown(f.key, ctx, known)
		}
	}
	return l
}

func (d *decoder) clients(f field, gctx, base string) Clients {
	ctx := gctx + ": clients"
	c := Clients{Line: f.key.Line}
	known := []string{"path", "maxMessageBytes", "rate", "burst", "maxClients", "readTimeout", "writeTimeout", "sendQueueBytes"}
	for _, f := range d.fields(f.val, ctx) {
		p := base + "." + f.key.Value
		switch f.key.Value {
		case "path":
			c.Path = d.str(f, ctx, p)
		case "maxMessageBytes":
			c.MaxMessageBytes = d.integer(f, ctx, p)
		case "rate":
			c.Rate = d.integer(f, ctx, p)
		case "burst":
			c.Burst = d.integer(f, ctx, p)
		case "maxClients":
			c.MaxClients = d.integer(f, ctx, p)
		case "readTimeout":
			c.ReadTimeout = d.duration(f, ctx, p)
		case "writeTimeout":
			c.WriteTimeout = d.duration(f, ctx, p)
		case "sendQueueBytes":
			c.SendQueueBytes = d.integer(f, ctx, p)
		default:
			d.unknown(f.key, ctx, known)
		}
	}
	return c
}

func (d *decoder) groups(f field) []Group {
	items := d.list(f, "", "groups")
	var out []Group
	for _, item := range items {
		item = resolve(item)
		if item.Kind != yaml.MappingNode {
			d.errorf(item, "", "groups: each group is a mapping with name and visibility, got %s", kindName(item))
			d.pos["groups"] = mark{line: d.pos["groups"].line, col: d.pos["groups"].col, bad: true}
			continue
		}
		out = append(out, d.group(item, len(out)))
	}
	return out
}

// nameOf returns the value of a mapping's "name" key for message context.
func nameOf(n *yaml.Node) (string, bool) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" {
			if v := resolve(n.Content[i+1]); v.Kind == yaml.ScalarNode && !isNull(v) {
				return v.Value, true
			}
		}
	}
	return "", false
}

func (d *decoder) group(n *yaml.Node, i int) Group {
	g := Group{Line: n.Line}
	base := "groups." + strconv.Itoa(i)
	d.pos[base] = mark{line: n.Line, col: n.Column}
	ctx := fmt.Sprintf("groups[%d]", i)
	if name, ok := nameOf(n); ok {
		ctx = fmt.Sprintf("group %q", name)
	}
	known := []string{"name", "visibility", "listen", "connectsTo", "replicas", "clients", "plugins"}
	for _, f := range d.fields(n, ctx) {
		p := base + "." + f.key.Value
		switch f.key.Value {
		case "name":
			g.Name = d.str(f, ctx, p)
		case "visibility":
			g.Visibility = Visibility(d.str(f, ctx, p))
		case "listen":
			g.Listen = d.str(f, ctx, p)
		case "connectsTo":
			for _, item := range d.list(f, ctx, p) {
				k := len(g.ConnectsTo)
				g.ConnectsTo = append(g.ConnectsTo, d.str(field{f.key, item}, ctx, p+"."+strconv.Itoa(k)))
			}
		case "replicas":
			g.Replicas = d.integer(f, ctx, p)
		case "clients":
			g.Clients = d.clients(f, ctx, p)
		case "plugins":
			for _, item := range d.list(f, ctx, p) {
				item = resolve(item)
				if item.Kind != yaml.MappingNode {
					d.errorf(item, ctx, "plugins: each plugin is a mapping with name and settings, got %s", kindName(item))
					continue
				}
				k := len(g.Plugins)
				g.Plugins = append(g.Plugins, d.plugin(item, ctx, p+"."+strconv.Itoa(k), k))
			}
		default:
			d.unknown(f.key, ctx, known)
		}
	}
	return g
}

func (d *decoder) plugin(n *yaml.Node, gctx, base string, k int) Plugin {
	p := Plugin{Line: n.Line}
	d.pos[base] = mark{line: n.Line, col: n.Column}
	ctx := fmt.Sprintf("%s: plugins[%d]", gctx, k)
	if name, ok := nameOf(n); ok {
		ctx = fmt.Sprintf("%s: plugin %q", gctx, name)
	}
	known := []string{"name", "settings"}
	for _, f := range d.fields(n, ctx) {
		switch f.key.Value {
		case "name":
			p.Name = d.str(f, ctx, base+".name")
		case "settings":
			if v := resolve(f.val); !isNull(v) {
				p.Settings = *v
			}
		default:
			d.unknown(f.key, ctx, known)
		}
	}
	return p
}

// suggest returns the known key closest to k (case-insensitive equal, or
// within two edits), or "".
func suggest(k string, known []string) string {
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
