package cli

import (
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/groups"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/registry"
)

type validateOptions struct {
	configFlag
}

func (o *validateOptions) flagSet(prog string) *flag.FlagSet {
	fs := newFlagSet(prog, "validate", "[-config cluster.yaml]", `
Validate checks a system file: its syntax, its topology rules, the registry's
settings and every plugin's settings (the registry connector and each plugin
must be compiled into this binary). It prints
the groups and who dials whom, or every problem with its file and line and
exits 1.`)
	o.defineConfig(fs)
	return fs
}

func (o *validateOptions) check() error { return nil }

func runValidate(e *env, o *validateOptions, sys *config.System) int {
	if errs := append(checkRegistry(sys), checkPlugins(sys)...); len(errs) > 0 {
		e.problems(o.config, errs)
		return exitFail
	}
	p := newPlan(sys)
	fmt.Fprintf(e.stdout, "system %q in %s: %s in %s, registry %s\n\n",
		sys.System, o.config, plural(p.servers, "server", "servers"), plural(len(sys.Groups), "group", "groups"), registryType(sys))
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tVISIBILITY\tREPLICAS\tLISTEN\tPLUGINS")
	for _, g := range sys.Groups {
		names := make([]string, len(g.Plugins))
		for i, pl := range g.Plugins {
			names[i] = pl.Name
		}
		ps := strings.Join(names, ", ")
		if ps == "" {
			ps = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", g.Name, g.Visibility, g.Replicas, g.Listen, ps)
	}
	tw.Flush()
	fmt.Fprintln(e.stdout, "\nWho dials whom:")
	if len(p.edges) == 0 {
		fmt.Fprintln(e.stdout, "  nobody: no group connects to another")
	}
	tw = tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	for _, ed := range p.edges {
		fmt.Fprintf(tw, "  %s → %s\t(%d × %d = %s)\n", ed.dialer, ed.acceptor, ed.dialers, ed.acceptors, plural(ed.links(), "link", "links"))
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "%s in all. OK\n", plural(p.links, "link", "links"))
	return exitOK
}

// checkPlugins provisions every plugin of every group, as a server would
// before it starts, and returns one line per problem.
func checkPlugins(sys *config.System) []string {
	var errs []string
	for _, g := range sys.Groups {
		for _, pl := range g.Plugins {
			_, err := plugins.Provision(plugins.Spec{Name: pl.Name, Settings: pl.Settings, File: sys.File, Line: pl.Line})
			if err != nil {
				errs = append(errs, fmt.Sprintf("%v (group %q)", err, g.Name))
			}
		}
	}
	return errs
}

// checkRegistry decodes and validates the registry block's settings, as
// run does before it opens the connector; one line per problem.
func checkRegistry(sys *config.System) []string {
	if err := registry.Check(registrySpec(sys)); err != nil {
		return []string{err.Error()}
	}
	return nil
}

func registryType(sys *config.System) string {
	if sys.Registry.Type == "" {
		return config.RegistryEmbedded
	}
	return sys.Registry.Type
}

// plan is what a system's links look like when every group runs its
// replicas.
type plan struct {
	topo     *groups.Topology
	edges    []edge
	servers  int            // servers in all
	links    int            // links in all
	perGroup map[string]int // links each server of a group has, both directions
}

// edge is one link kind: every server of dialer dials every server of
// acceptor.
type edge struct {
	dialer, acceptor   string
	dialers, acceptors int // replicas
}

func (e edge) links() int { return e.dialers * e.acceptors }

func newPlan(sys *config.System) plan {
	p := plan{topo: groups.New(sys), perGroup: make(map[string]int)}
	replicas := make(map[string]int)
	for _, g := range sys.Groups {
		replicas[g.Name] = g.Replicas
		p.servers += g.Replicas
	}
	for _, ed := range p.topo.Edges() {
		e := edge{dialer: ed[0], acceptor: ed[1], dialers: replicas[ed[0]], acceptors: replicas[ed[1]]}
		p.edges = append(p.edges, e)
		p.links += e.links()
		p.perGroup[e.dialer] += e.acceptors
		p.perGroup[e.acceptor] += e.dialers
	}
	return p
}
