package config

import (
	"fmt"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/internal/yamlx"
)

// system decodes the top-level mapping.
func (d *decoder) system(root *yaml.Node) *System {
	s := &System{File: d.file, Line: root.Line}
	d.pos[""] = mark{line: root.Line, col: root.Column}
	known := []string{"system", "secret", "registry", "links", "groups"}
	for _, f := range d.fields(root, "") {
		switch f.Key.Value {
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
			d.unknown(f.Key, "", known)
		}
	}
	return s
}

func (d *decoder) registry(f yamlx.Field) Registry {
	const ctx = "registry"
	r := Registry{Line: yamlx.Resolve(f.Val).Line}
	known := []string{"type", "settings"}
	for _, f := range d.fields(f.Val, ctx) {
		switch f.Key.Value {
		case "type":
			r.Type = d.str(f, ctx, "registry.type")
		case "settings":
			if v := yamlx.Resolve(f.Val); !yamlx.IsNull(v) {
				r.Settings = *v
			}
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
	known := []string{"handshakeTimeout", "heartbeat", "timeout", "maxFrame", "queueBytes", "backoffMin", "backoffMax", "leaveGrace"}
	for _, f := range d.fields(f.Val, ctx) {
		p := "links." + f.Key.Value
		switch f.Key.Value {
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
			d.unknown(f.Key, ctx, known)
		}
	}
	return l
}

func (d *decoder) clients(f yamlx.Field, gctx, base string) Clients {
	ctx := gctx + ": clients"
	c := Clients{Line: f.Key.Line}
	known := []string{"path", "maxMessageBytes", "rate", "burst", "maxClients", "readTimeout", "writeTimeout", "sendQueueBytes", "allowedOrigins"}
	for _, f := range d.fields(f.Val, ctx) {
		p := base + "." + f.Key.Value
		switch f.Key.Value {
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
		case "allowedOrigins":
			for k, item := range d.list(f, ctx, p) {
				c.AllowedOrigins = append(c.AllowedOrigins, d.str(yamlx.Field{Key: f.Key, Val: item}, ctx, p+"."+strconv.Itoa(k)))
			}
		default:
			d.unknown(f.Key, ctx, known)
		}
	}
	return c
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
	known := []string{"name", "visibility", "listen", "connectsTo", "replicas", "clients", "plugins"}
	for _, f := range d.fields(n, ctx) {
		p := base + "." + f.Key.Value
		switch f.Key.Value {
		case "name":
			g.Name = d.str(f, ctx, p)
		case "visibility":
			g.Visibility = Visibility(d.str(f, ctx, p))
		case "listen":
			g.Listen = d.str(f, ctx, p)
		case "connectsTo":
			for _, item := range d.list(f, ctx, p) {
				k := len(g.ConnectsTo)
				g.ConnectsTo = append(g.ConnectsTo, d.str(yamlx.Field{Key: f.Key, Val: item}, ctx, p+"."+strconv.Itoa(k)))
			}
		case "replicas":
			g.Replicas = d.integer(f, ctx, p)
		case "clients":
			g.Clients = d.clients(f, ctx, p)
		case "plugins":
			for _, item := range d.list(f, ctx, p) {
				item = yamlx.Resolve(item)
				if item.Kind != yaml.MappingNode {
					d.errorf(item, ctx, "plugins: each plugin is a mapping with name and settings, got %s", yamlx.KindName(item))
					continue
				}
				k := len(g.Plugins)
				g.Plugins = append(g.Plugins, d.plugin(item, ctx, p+"."+strconv.Itoa(k), k))
			}
		default:
			d.unknown(f.Key, ctx, known)
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
		switch f.Key.Value {
		case "name":
			p.Name = d.str(f, ctx, base+".name")
		case "settings":
			if v := yamlx.Resolve(f.Val); !yamlx.IsNull(v) {
				p.Settings = *v
			}
		default:
			d.unknown(f.Key, ctx, known)
		}
	}
	return p
}
