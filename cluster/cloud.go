package cluster

import (
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/plugins"
)

// The cloud-memory wiring: the client plugin a server gets when its group
// connects to a cloud-memory group, each plugin's session, and the
// filters that may refuse an operation.

// filterCloud runs every CloudFilter; the first rejection wins and a
// panic rejects.
func (hs *hookSet) filterCloud(op *plugins.CloudOp) error {
	for _, h := range hs.filters {
		var refusal error
		err := hs.call(h.slot, "FilterCloud", func() error {
			refusal = h.h.FilterCloud(op)
			return nil
		})
		if err != nil {
			return errors.New("query filter failed")
		}
		if refusal != nil {
			return refusal
		}
	}
	return nil
}

// cloudSession returns slot's cloud-memory session, making it on first
// use. slot is nil for the embedder's Host.
func (hs *hookSet) cloudSession(slot *pluginSlot) (plugins.CloudMemory, error) {
	if hs.cloud == nil {
		return nil, fmt.Errorf("%w: group %q connects to no group running %q",
			plugins.ErrNoCloudMemory, hs.s.group.Name, plugins.CloudMemoryPlugin)
	}
	if slot == nil {
		hs.embedOnce.Do(func() { hs.embedCloud = hs.cloud.CloudSession("embedder", nil) })
		return hs.embedCloud, nil
	}
	slot.cloudOnce.Do(func() {
		var notify func(cloud.Notification)
		if h, ok := slot.p.(plugins.CloudNotificationHandler); ok {
			notify = func(n cloud.Notification) {
				_ = hs.call(slot, "CloudNotification", func() error { return h.CloudNotification(n) })
			}
		}
		slot.cloud = hs.cloud.CloudSession(slot.name, notify)
	})
	return slot.cloud, nil
}

// withCloudClient adds the cloud-memory client, first, to the plugins of a
// server whose group connects to a group running the cloud memory (unless
// a plugin already provides one). The client's settings are the cloud
// plugin's, under "settings", with the cloud group's name under "group".
func (s *Server) withCloudClient(ps []plugins.Plugin, names []string) ([]plugins.Plugin, []string, error) {
	for _, p := range ps {
		if _, ok := p.(plugins.CloudMemoryProvider); ok {
			return ps, names, nil
		}
	}
	var clouds []string
	var spec plugins.Spec
	for _, up := range s.topo.Upstream(s.group.Name) {
		g, _ := s.sys.Group(up)
		for _, p := range g.Plugins {
			if p.Name != plugins.CloudMemoryPlugin {
				continue
			}
			clouds = append(clouds, up)
			settings := yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: p.Line, Content: []*yaml.Node{
				{Kind: yaml.ScalarNode, Tag: "!!str", Value: "group", Line: p.Line},
				{Kind: yaml.ScalarNode, Tag: "!!str", Value: up, Line: p.Line},
			}}
			if n := p.Settings; n.Kind != 0 && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
				settings.Content = append(settings.Content,
					&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "settings", Line: n.Line}, &n)
			}
			spec = plugins.Spec{Name: plugins.CloudMemoryClientPlugin, Settings: settings, File: s.sys.File, Line: p.Line}
		}
	}
	switch len(clouds) {
	case 0:
		return ps, names, nil
	case 1:
	default:
		return nil, nil, fmt.Errorf("%w: group %q connects to %d cloud-memory groups (%v); connect to one",
			ErrBadOptions, s.group.Name, len(clouds), clouds)
	}
	p, err := plugins.Provision(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: cloud-memory client for group %q (cloud group %q): %w", s.group.Name, clouds[0], err)
	}
	return append([]plugins.Plugin{p}, ps...), append([]string{plugins.CloudMemoryClientPlugin}, names...), nil
}
