package consul

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/cloudrift/cloudrift/registry"
)

// ErrUnreachable is wrapped by Health when no answer came from the agent
// (connection refused, timeout, DNS failure): the message names the
// address tried.
var ErrUnreachable = errors.New("consul: agent unreachable")

// MemberHealth is one registration of a group's service with its health as
// Consul sees it, for operators (cloudrift status).
type MemberHealth struct {
	registry.Member
	// Node is the Consul node that holds the registration.
	Node string
	// Status aggregates every check of the service and of its node:
	// api.HealthPassing, api.HealthWarning, api.HealthCritical or
	// api.HealthMaint, the worst one winning.
	Status string
	// Output is the output of a check in the aggregated status when that
	// status is not passing (for a crashed server, "TTL expired"); empty
	// otherwise.
	Output string
}

// Address returns the agent address the connector talks to, as resolved
// from Config and the environment.
func (c *Connector) Address() string { return c.address }

// Health returns every registration of group, whatever the health of its
// checks (Watch reports passing members only), sorted by ID, then node.
// Registrations are decoded by the same rules as Watch: services of another
// system are left out. Unlike Watch, a member registered on several nodes
// is listed once per node. The request is bounded by ctx and by 10 s. A
// token Consul refuses, or one that may not read every registration of the
// group (Consul then hides some), gives ErrUnauthorized, as does an empty
// answer to a request without a token from an agent whose default ACL
// policy is deny; no answer at all gives ErrUnreachable.
func (c *Connector) Health(ctx context.Context, group string) ([]MemberHealth, error) {
	if c.isClosed() {
		return nil, registry.ErrClosed
	}
	if !nameRE.MatchString(group) {
		return nil, fmt.Errorf("consul: health: group %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", group)
	}
	name := c.serviceName(group)
	ctx, cancel := c.mergeCancel(ctx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, requestTimeout)
	defer cancelTimeout()
	entries, meta, err := c.client.Health().Service(name, "", false, c.queryOptions(ctx))
	if err == nil && meta.ResultsFilteredByACLs {
		// Consul answers 200 but leaves out what the token may not read:
		// an incomplete list must not pass for the truth.
		return nil, fmt.Errorf("%w: health of group %s at %s: Consul hid registrations this token may not read "+
			"(listing needs service:read on %q and node:read); token from %s",
			ErrUnauthorized, group, c.address, name, c.tokenSource)
	}
	if err == nil && len(entries) == 0 && meta.DefaultACLPolicy == "deny" && c.anonymous() {
		// Without a token, Consul hides everything from a default-deny
		// agent and does not say so: an empty list proves nothing.
		return nil, fmt.Errorf("%w: health of group %s at %s: no token set and the agent's default ACL policy is deny, "+
			"so Consul hides every registration the anonymous token may not read; set %s or the registry config's token",
			ErrUnauthorized, group, c.address, api.HTTPTokenEnvName)
	}
	if err != nil {
		if c.isClosed() {
			return nil, registry.ErrClosed
		}
		var se api.StatusError
		if !errors.As(err, &se) && !errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("%w at %s (is the agent running? set the registry's consul address or %s): %v",
				ErrUnreachable, c.address, api.HTTPAddrEnvName, err)
		}
		return nil, c.apiError("health of group "+group, name, err)
	}
	out := make([]MemberHealth, 0, len(entries))
	for _, e := range entries {
		// members applies Watch's decoding rules to one entry.
		ms := c.members(group, []*api.ServiceEntry{e})
		if len(ms) == 0 {
			continue
		}
		h := MemberHealth{Member: ms[0], Status: e.Checks.AggregatedStatus()}
		if e.Node != nil {
			h.Node = e.Node.Node
		}
		if h.Status != api.HealthPassing {
			for _, ch := range e.Checks {
				if ch.Status == h.Status {
					h.Output = strings.TrimSpace(ch.Output)
					break
				}
			}
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b MemberHealth) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.Node, b.Node)
	})
	return out, nil
}

// anonymous reports whether requests go without a token (the agent's
// anonymous token applies).
func (c *Connector) anonymous() bool {
	return c.token == "" && os.Getenv(api.HTTPTokenEnvName) == "" && os.Getenv(api.HTTPTokenFileEnvName) == ""
}
