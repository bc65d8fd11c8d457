package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudrift/cloudrift/internal/backoff"
)

// outage is how long a partition or a pause lasts: twice the registry's
// TTL, so that the cut-off server is reported failed before it returns.
const outage = 10 * time.Second

// event is one disruption of the running system.
type event struct {
	name string
	run  func(ctx context.Context, su *suite, ev *eventStats) error
}

// fullEvents is every event of the suite, in order.
func fullEvents() []event {
	return []event{
		scale("world", 5), scale("world", 2), scale("cloud", 4), scale("cloud", 3),
		kill("client"), kill("world"), kill("social"), kill("cloud"),
		partition("world"), partition("cloud"),
		pause("cloud"),
		consulOutage("consul2"),
		consulRestart("consul1"), consulRestart("consul2"), consulRestart("consul3"),
		rolling("client"), rolling("world"), rolling("social"), rolling("cloud"),
	}
}

// shortEvents is one event of each kind, for a quicker look (-short).
func shortEvents() []event {
	return []event{
		scale("world", 4), kill("client"), kill("cloud"), partition("world"), pause("cloud"), consulRestart("consul2"),
		rolling("client"),
	}
}

// eventsByName returns the events named in a comma-separated list of
// names of fullEvents or shortEvents ("kill client,pause cloud").
func eventsByName(list string) ([]event, error) {
	all := append(fullEvents(), shortEvents()...)
	var out []event
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(all, func(e event) bool { return e.name == name })
		if i < 0 {
			var names []string
			for _, e := range all {
				names = append(names, e.name)
			}
			return nil, fmt.Errorf("no event %q; events: %s", name, strings.Join(slices.Compact(names), ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

// scale sets the replicas of a group with docker-compose.
func scale(group string, n int) event {
	return event{name: fmt.Sprintf("scale %s to %d", group, n), run: func(ctx context.Context, su *suite, _ *eventStats) error {
		from := su.sys.want[group]
		su.sys.want[group] = n
		args := []string{"up", "-d", "--no-recreate"}
		for _, g := range su.sys.sys.Groups {
			args = append(args, "--scale", fmt.Sprintf("%s=%d", g.Name, su.sys.want[g.Name]))
		}
		su.opts.Log("  %s %d -> %d", group, from, n)
		_, err := su.sys.Compose(ctx, args...)
		return err
	}}
}

// first returns the first running container of a service.
func first(ctx context.Context, su *suite, service string) (string, error) {
	ids, err := su.sys.Containers(ctx, service)
	if err != nil {
		return "", err
	}
	if len(ids) == 0 {
		return "", fmt.Errorf("no running container of %s", service)
	}
	slices.Sort(ids)
	return ids[0], nil
}

// kill sends SIGKILL to one container of a group, then starts it again
// unless its restart policy already did.
func kill(group string) event {
	return event{name: "kill " + group, run: func(ctx context.Context, su *suite, _ *eventStats) error {
		id, err := first(ctx, su, group)
		if err != nil {
			return err
		}
		su.hit(id)
		if _, err := su.sys.Run(ctx, "docker", "kill", id); err != nil {
			return err
		}
		return su.ensureRunning(ctx, id, 5*time.Second)
	}}
}

// ensureRunning waits up to wait for a container to run again, then
// starts it.
func (su *suite) ensureRunning(ctx context.Context, id string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		out, err := su.sys.Run(ctx, "docker", "inspect", "-f", "{{.State.Running}}", id)
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) == "true" {
			su.opts.Log("  %s running again (restart policy)", id[:12])
			return nil
		}
		backoff.Sleep(ctx, 250*time.Millisecond)
	}
	_, err := su.sys.Run(ctx, "docker", "start", id)
	return err
}

// partition cuts one container of a group off its network for outage,
// then connects it again with its own address and names.
func partition(group string) event {
	var ip string
	return outageOf("partition "+group, group, func(ctx context.Context, su *suite, id string) (err error) {
		if ip, err = su.sys.ip(ctx, id); err != nil {
			return err
		}
		_, err = su.sys.Run(ctx, "docker", "network", "disconnect", "-f", su.sys.network, id)
		return err
	}, func(ctx context.Context, su *suite, id string) error {
		_, err := su.sys.Run(ctx, "docker", "network", "connect", "--ip", ip, "--alias", group, "--alias", id[:12], su.sys.network, id)
		return err
	})
}

// pause freezes one container of a group for outage.
func pause(group string) event {
	return outageOf("pause "+group, group, func(ctx context.Context, su *suite, id string) error {
		_, err := su.sys.Run(ctx, "docker", "pause", id)
		return err
	}, func(ctx context.Context, su *suite, id string) error {
		_, err := su.sys.Run(ctx, "docker", "unpause", id)
		return err
	})
}

// outageOf is an event that cuts one container of a group off, waits
// outage and heals it.
func outageOf(name, group string, cut, heal func(ctx context.Context, su *suite, id string) error) event {
	return event{name: name, run: func(ctx context.Context, su *suite, _ *eventStats) error {
		id, err := first(ctx, su, group)
		if err != nil {
			return err
		}
		su.hit(id)
		if err := cut(ctx, su, id); err != nil {
			return err
		}
		backoff.Sleep(ctx, outage)
		// A heal runs to its end even when the run is interrupted: a
		// network connect cut short leaves an endpoint that keeps the
		// network from being removed.
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		return heal(hctx, su, id)
	}}
}

// consulOutage kills one Consul server of three for outage, then starts
// it again. The groups registered with it lose their registrations
// meanwhile (each group names one agent).
func consulOutage(service string) event {
	return event{name: "kill " + service, run: func(ctx context.Context, su *suite, _ *eventStats) error {
		id, err := first(ctx, su, service)
		if err != nil {
			return err
		}
		if _, err := su.sys.Run(ctx, "docker", "kill", id); err != nil {
			return err
		}
		backoff.Sleep(ctx, outage)
		if err := su.ensureRunning(ctx, id, 0); err != nil {
			return err
		}
		return su.sys.waitLeader(ctx, time.Minute)
	}}
}

// consulRestart restarts one Consul server gracefully and waits for a
// leader.
func consulRestart(service string) event {
	return event{name: "restart " + service, run: func(ctx context.Context, su *suite, _ *eventStats) error {
		id, err := first(ctx, su, service)
		if err != nil {
			return err
		}
		if _, err := su.sys.Run(ctx, "docker", "restart", "-t", "15", id); err != nil {
			return err
		}
		return su.sys.waitLeader(ctx, time.Minute)
	}}
}

// rolling restarts every container of a group gracefully, one at a time
// (as the compose file's update_config does on a Swarm), waiting after
// each until the system is consistent again.
func rolling(group string) event {
	return event{name: "rolling restart " + group, run: func(ctx context.Context, su *suite, ev *eventStats) error {
		ids, err := su.sys.Containers(ctx, group)
		if err != nil {
			return err
		}
		slices.Sort(ids)
		for i, id := range ids {
			su.hit(id)
			if _, err := su.sys.Run(ctx, "docker", "restart", "-t", "15", id); err != nil {
				return err
			}
			if i == len(ids)-1 {
				return nil // the suite waits after the last
			}
			if err := su.settle(ctx, ev); err != nil || ev.violation != "" {
				return err
			}
		}
		return nil
	}}
}
