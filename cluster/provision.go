package cluster

import (
	"fmt"

	"github.com/cloudrift/cloudrift/plugins"
)

// provision returns the plugins the server hosts, with their names for
// logs: first the plugins attached from upstream groups (Info.Attach),
// then the group's own, provisioned from the system file unless
// Options.Plugins gives the values.
func (s *Server) provision() ([]plugins.Plugin, []string, error) {
	ps, names, err := s.attachments()
	if err != nil {
		return nil, nil, err
	}
	if s.opts.Plugins != nil {
		for i, p := range s.opts.Plugins {
			ps = append(ps, p)
			name := ""
			if i < len(s.group.Plugins) {
				name = s.group.Plugins[i].Name
			}
			names = append(names, name)
		}
		return ps, names, nil
	}
	for _, spec := range s.group.Plugins {
		p, err := plugins.Provision(plugins.Spec{Name: spec.Name, Settings: spec.Settings, File: s.sys.File, Line: spec.Line})
		if err != nil {
			return nil, nil, err
		}
		ps = append(ps, p)
		names = append(names, spec.Name)
	}
	return ps, names, nil
}

// attachments makes the plugins that upstream groups attach to this
// server, in upstream and plugin order, each named "<plugin>@<group>".
// Two attachments of one plugin (the group connects to two groups running
// it) are an error naming both groups.
func (s *Server) attachments() ([]plugins.Plugin, []string, error) {
	var ps []plugins.Plugin
	var names []string
	from := make(map[string]string) // plugin name → the upstream group attaching it
	for _, up := range s.topo.Upstream(s.group.Name) {
		g, _ := s.sys.Group(up)
		for _, spec := range g.Plugins {
			a := plugins.Attachment{Group: up, Spec: plugins.Spec{Name: spec.Name, Settings: spec.Settings, File: s.sys.File, Line: spec.Line}}
			p, ok, err := plugins.Attach(a)
			if err != nil {
				return nil, nil, fmt.Errorf("cluster: group %q: %w", s.group.Name, err)
			}
			if !ok {
				continue
			}
			if prev, dup := from[spec.Name]; dup {
				return nil, nil, fmt.Errorf("%w: group %q connects to groups %q and %q, which both run plugin %q; connect to one",
					ErrBadOptions, s.group.Name, prev, up, spec.Name)
			}
			from[spec.Name] = up
			ps = append(ps, p)
			names = append(names, spec.Name+"@"+up)
		}
	}
	return ps, names, nil
}
