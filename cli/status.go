package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/registry"
	"github.com/cloudrift/cloudrift/registry/consul"
)

type statusOptions struct {
	configFlag
	timeout time.Duration
}

func (o *statusOptions) flagSet(prog string) *flag.FlagSet {
	fs := newFlagSet(prog, "status", "[-config cluster.yaml] [-timeout 10s]", `
Status lists, for each group of the system file, the servers registered in
the system's registry and their health as the registry sees them: every
registration, not only the passing ones (a crashed server stays listed as
critical until Consul removes it, registry.settings.deregisterAfter later).
Health is passing, warning, critical or maintenance; for a server that is
not passing, Consul's reason follows (a crashed server's is "TTL expired").

Status needs the consul registry: it reads each server's health from
Consul's checks, which no other connector keeps. The agent's address and
ACL token come from the registry block's settings, else from
CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN. Status exits 0 when the registry answered for every
group, whatever the health of the servers, and 1 when it did not.`)
	o.defineConfig(fs)
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "give up on the registry after this `duration`")
	return fs
}

func (o *statusOptions) check() error {
	if o.timeout <= 0 {
		return fmt.Errorf("-timeout %s: want a positive duration", o.timeout)
	}
	return nil
}

func runStatus(e *env, o *statusOptions, sys *config.System) int {
	if t := registryType(sys); t != consul.Type {
		fmt.Fprintf(e.stderr, "%s status: %s uses the %s registry; status asks Consul for each server's health, so it needs \"registry: {type: consul}\"\n",
			e.prog, o.config, t)
		return exitFail
	}
	c, err := registry.Open(registrySpec(sys), registry.Options{System: sys.System})
	if err != nil {
		fmt.Fprintf(e.stderr, "%s status: %v\n", e.prog, err)
		return exitFail
	}
	defer c.Close()
	conn := c.(*consul.Connector) // the consul type opens nothing else

	ctx, cancel := context.WithTimeout(e.ctx, o.timeout)
	defer cancel()
	type groupHealth struct {
		g       *config.Group
		members []consul.MemberHealth
	}
	all := make([]groupHealth, 0, len(sys.Groups))
	for i := range sys.Groups {
		g := &sys.Groups[i]
		ms, err := conn.Health(ctx, g.Name)
		if err != nil {
			switch {
			case e.ctx.Err() != nil:
				err = fmt.Errorf("interrupted: %w", err)
			case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
				err = fmt.Errorf("no answer from Consul at %s within %s: %w", conn.Address(), o.timeout, err)
			}
			fmt.Fprintf(e.stderr, "%s status: %v\n", e.prog, err)
			return exitFail
		}
		all = append(all, groupHealth{g, ms})
	}

	total := 0
	for _, gh := range all {
		total += len(gh.members)
	}
	fmt.Fprintf(e.stdout, "system %q: %s in %s, as Consul at %s sees them\n",
		sys.System, plural(total, "server", "servers"), plural(len(sys.Groups), "group", "groups"), conn.Address())
	for _, gh := range all {
		fmt.Fprintf(e.stdout, "\n%s (%s): %s\n", gh.g.Name, gh.g.Visibility, summary(gh.members))
		if len(gh.members) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tADDRESS\tINCARNATION\tNODE\tHEALTH")
		for _, m := range gh.members {
			health := m.Status
			if m.Output != "" {
				health += " (" + oneLine(m.Output, 80) + ")"
			}
			if m.Meta[registry.MetaDraining] == "1" {
				health += ", draining"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", m.ID, m.Address, strconv.FormatUint(m.Incarnation, 10), m.Node, health)
		}
		tw.Flush()
	}
	return exitOK
}

// healthOrder lists Consul's statuses from best to worst.
var healthOrder = []string{api.HealthPassing, api.HealthWarning, api.HealthCritical, api.HealthMaint}

// summary counts a group's members by health: "3 servers: 2 passing,
// 1 critical", or "no servers".
func summary(ms []consul.MemberHealth) string {
	if len(ms) == 0 {
		return "no servers"
	}
	counts := make(map[string]int)
	for _, m := range ms {
		counts[m.Status]++
	}
	var parts []string
	for _, s := range healthOrder {
		if n := counts[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
			delete(counts, s)
		}
	}
	for _, s := range slices.Sorted(maps.Keys(counts)) { // statuses newer than this code
		parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
	}
	return plural(len(ms), "server", "servers") + ": " + strings.Join(parts, ", ")
}

// oneLine returns s on one line, cut to at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
