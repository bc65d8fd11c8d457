package config

import (
	"fmt"
	"slices"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/internal/yamlx"
)

// system decodes the top-level mapping.
func (d *decoder) system(root *yaml.Node) *System {
	s := &System{File: d.file, Line: root.Line}
	d.pos[""] = mark{line: root.Line, col: root.Column}
	d.mapping(root, "", "", []key{
		d.strKey("system", "", &s.System),
		d.strKey("secret", "", &s.Secret),
		{"registry", func(f yamlx.Field, _ string) { s.Registry = d.registry(f) }},
		{"links", func(f yamlx.Field, _ string) { s.Links = d.links(f) }},
		{"groups", func(f yamlx.Field, _ string) { s.Groups = d.groups(f) }},
	})
	return s
}

func (d *decoder) registry(f yamlx.Field) Registry {
	const ctx = "registry"
	r := Registry{Line: yamlx.Resolve(f.Val).Line}
	known := []string{"type", "settings", "startTimeout"}
	for _, f := range d.fields(f.Val, ctx) {
		switch f.Key.Value {
		case "type":
			r.Type = d.str(f, ctx, "registry.type")
		case "startTimeout":
			r.StartTimeout = d.duration(f, ctx, "registry.startTimeout")
		case "settings":
			setNode(&r.Settings, f)
		case "consul": // the block's key before connectors were registered
			d.errorf(f.Key, ctx, `unknown key "consul": a connector's settings go under "settings:"`)
		default:
			d.unknown(f.Key, ctx, known)
		}
	}
	return r
}

func (d *decoder) links(f yamlx.Field) Links {
	const ctx = "links"
	var l Links
	d.mapping(f.Val, ctx, "links", []key{
		d.durationKey("handshakeTimeout", ctx, &l.HandshakeTimeout),
		d.durationKey("heartbeat", ctx, &l.Heartbeat),
		d.durationKey("timeout", ctx, &l.Timeout),
		d.intKey("maxFrame", ctx, &l.MaxFrame),
		d.intKey("queueBytes", ctx, &l.QueueBytes),
		d.durationKey("backoffMin", ctx, &l.BackoffMin),
		d.durationKey("backoffMax", ctx, &l.BackoffMax),
		d.durationKey("leaveGrace", ctx, &l.LeaveGrace),
		d.strKey("socketDir", ctx, &l.SocketDir),
		{"tls", func(f yamlx.Field, p string) { l.TLS = d.tls(f, ctx, p) }},
	})
	return l
}

func (d *decoder) clients(f yamlx.Field, gctx, base string) Clients {
	ctx := gctx + ": clients"
	c := Clients{Line: f.Key.Line}
	d.mapping(f.Val, ctx, base, []key{
		d.strKey("path", ctx, &c.Path),
		d.intKey("maxMessageBytes", ctx, &c.MaxMessageBytes),
		d.intKey("rate", ctx, &c.Rate),
		d.intKey("burst", ctx, &c.Burst),
		d.intKey("maxClients", ctx, &c.MaxClients),
		d.durationKey("readTimeout", ctx, &c.ReadTimeout),
		d.durationKey("writeTimeout", ctx, &c.WriteTimeout),
		d.intKey("sendQueueBytes", ctx, &c.SendQueueBytes),
		d.durationKey("drainTimeout", ctx, &c.DrainTimeout),
		d.strListKey("allowedOrigins", ctx, &c.AllowedOrigins),
		{"tls", func(f yamlx.Field, p string) { c.TLS = d.tls(f, ctx, p) }},
	})
	return c
}

// tls decodes a tls mapping of links or clients.
func (d *decoder) tls(f yamlx.Field, pctx, base string) TLS {
	ctx := pctx + ": tls"
	t := TLS{Line: f.Key.Line}
	d.mapping(f.Val, ctx, base, []key{
		d.strKey("certFile", ctx, &t.CertFile),
		d.strKey("keyFile", ctx, &t.KeyFile),
		d.strKey("caFile", ctx, &t.CAFile),
	})
	return t
}

// ops decodes a group's ops mapping.
func (d *decoder) ops(f yamlx.Field, gctx, base string) Ops {
	ctx := gctx + ": ops"
	o := Ops{Line: f.Key.Line}
	d.mapping(f.Val, ctx, base, []key{
		d.strKey("listen", ctx, &o.Listen),
		{"pprof", func(f yamlx.Field, p string) { o.Pprof = d.boolean(f, ctx, p) }},
		d.strKey("token", ctx, &o.Token),
	})
	return o
}

func (d *decoder) groups(f yamlx.Field) []Group {
	items := d.list(f, "", "groups")
	var out []Group
	for _, item := range items {
		item = yamlx.Resolve(item)
		if item.Kind != yaml.MappingNode {
			d.errorf(item, "", "groups: each group is a mapping with name and visibility, got %s", yamlx.KindName(item))
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
			if v := yamlx.Resolve(n.Content[i+1]); v.Kind == yaml.ScalarNode && !yamlx.IsNull(v) {
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
	d.mapping(n, ctx, base, []key{
		d.strKey("name", ctx, &g.Name),
		{"visibility", func(f yamlx.Field, p string) { g.Visibility = Visibility(d.str(f, ctx, p)) }},
		d.strKey("listen", ctx, &g.Listen),
		{"connectsTo", func(f yamlx.Field, p string) {
			for _, item := range d.list(f, ctx, p) {
				k := len(g.ConnectsTo)
				g.ConnectsTo = append(g.ConnectsTo, d.str(yamlx.Field{Key: f.Key, Val: item}, ctx, p+"."+strconv.Itoa(k)))
			}
		}},
		d.intKey("replicas", ctx, &g.Replicas),
		{"clients", func(f yamlx.Field, p string) { g.Clients = d.clients(f, ctx, p) }},
		{"ops", func(f yamlx.Field, p string) { g.Ops = d.ops(f, ctx, p) }},
		{"plugins", func(f yamlx.Field, p string) {
			for _, item := range d.list(f, ctx, p) {
				item = yamlx.Resolve(item)
				if item.Kind != yaml.MappingNode {
					d.errorf(item, ctx, "plugins: each plugin is a mapping with name and settings, got %s", yamlx.KindName(item))
					continue
				}
				k := len(g.Plugins)
				g.Plugins = append(g.Plugins, d.plugin(item, ctx, p+"."+strconv.Itoa(k), k))
			}
		}},
	})
	return g
}

func (d *decoder) plugin(n *yaml.Node, gctx, base string, k int) Plugin {
	p := Plugin{Line: n.Line}
	d.pos[base] = mark{line: n.Line, col: n.Column}
	ctx := fmt.Sprintf("%s: plugins[%d]", gctx, k)
	if name, ok := nameOf(n); ok {
		ctx = fmt.Sprintf("%s: plugin %q", gctx, name)
	}
	d.mapping(n, ctx, base, []key{
		d.strKey("name", ctx, &p.Name),
		{"settings", func(f yamlx.Field, _ string) { setNode(&p.Settings, f) }},
	})
	return p
}

// key is a key a mapping may hold, and how its value decodes: decode gets
// the field and the value's path.
type key struct {
	name   string
	decode func(f yamlx.Field, path string)
}

// mapping decodes the fields of mapping n whose paths begin with base
// ("" at the top): each known key's with its decode, and reports each
// unknown key. ctx is the mapping's context in messages.
func (d *decoder) mapping(n *yaml.Node, ctx, base string, keys []key) {
	for _, f := range d.fields(n, ctx) {
		i := slices.IndexFunc(keys, func(k key) bool { return k.name == f.Key.Value })
		if i < 0 {
			known := make([]string, len(keys))
			for j, k := range keys {
				known[j] = k.name
			}
			d.unknown(f.Key, ctx, known)
			continue
		}
		path := f.Key.Value
		if base != "" {
			path = base + "." + path
		}
		keys[i].decode(f, path)
	}
}

// strKey, intKey and durationKey are keys whose value is a string, an
// integer or a duration, decoded into dst.
func (d *decoder) strKey(name, ctx string, dst *string) key {
	return key{name, func(f yamlx.Field, p string) { *dst = d.str(f, ctx, p) }}
}

func (d *decoder) intKey(name, ctx string, dst *int) key {
	return key{name, func(f yamlx.Field, p string) { *dst = d.integer(f, ctx, p) }}
}

func (d *decoder) strListKey(name, ctx string, dst *[]string) key {
	return key{name, func(f yamlx.Field, p string) {
		for i, item := range d.list(f, ctx, p) {
			*dst = append(*dst, d.str(yamlx.Field{Key: f.Key, Val: item}, ctx, p+"."+strconv.Itoa(i)))
		}
	}}
}

func (d *decoder) durationKey(name, ctx string, dst *Duration) key {
	return key{name, func(f yamlx.Field, p string) { *dst = d.duration(f, ctx, p) }}
}

// setNode keeps f's value, unless null, as a plugin's or connector's
// settings: they decode later, by their owner.
func setNode(dst *yaml.Node, f yamlx.Field) {
	if v := yamlx.Resolve(f.Val); !yamlx.IsNull(v) {
		*dst = *v
	}
}
