package consul

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/cloudrift/cloudrift/internal/backoff"
	"github.com/cloudrift/cloudrift/registry"
)

// Pacing of the watch loop.
const (
	// minQueryGap is the least time between the starts of two queries of
	// one watch: at most 20 queries a second, whatever Consul answers.
	minQueryGap = 50 * time.Millisecond
	// retryMin and retryMax bound the pause after consecutive errors.
	retryMin = 100 * time.Millisecond
	retryMax = 2 * time.Second
	// querySlack is added to the wait time to bound one query: Consul
	// answers within WaitTime plus up to WaitTime/16 of jitter.
	querySlack = 10 * time.Second
)

// Watch reports the passing members of group as full snapshots (see
// registry.Connector.Watch). It starts one goroutine that runs blocking
// health queries until ctx is done or the connector is closed, then closes
// the channel. The first snapshot comes with Consul's first answer: while
// Consul cannot be reached, nothing is published.
func (c *Connector) Watch(ctx context.Context, group string) (<-chan []registry.Member, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, registry.ErrClosed
	}
	if !nameRE.MatchString(group) {
		return nil, fmt.Errorf("consul: watch: group %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", group)
	}
	wctx, cancel := c.mergeCancel(ctx)
	pub := registry.NewPublisher()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer pub.Close()
		defer cancel()
		c.watch(wctx, group, pub)
	}()
	return pub.C(), nil
}

// watch is the loop of one watch; it returns when ctx is done.
func (c *Connector) watch(ctx context.Context, group string, pub *registry.Publisher) {
	name := c.serviceName(group)
	log := c.log.With().Str("group", group).Logger()
	var (
		index     uint64
		failures  int
		lastStart time.Time
		warnedACL bool
	)
	for {
		if !backoff.Sleep(ctx, time.Until(lastStart.Add(minQueryGap))) {
			return
		}
		lastStart = time.Now()
		qctx, cancel := context.WithTimeout(ctx, c.waitTime+c.waitTime/16+querySlack)
		q := c.queryOptions(qctx)
		q.WaitIndex = index
		q.WaitTime = c.waitTime
		entries, meta, err := c.client.Health().Service(name, "", true, q)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			// An outage may end with an agent that lost its state and
			// counts indexes from scratch: ask afresh next time.
			index = 0
			if failures == 1 {
				log.Warn().Err(c.apiError("watch", name, err)).
					Msg("watch query failed; keeping the last known members and retrying with backoff")
			} else {
				log.Debug().Err(err).Int("failures", failures).Msg("watch query failed again")
			}
			if !backoff.Sleep(ctx, backoff.Policy{Min: retryMin, Max: retryMax}.Delay(failures)) {
				return
			}
			continue
		}
		if failures > 0 {
			log.Info().Int("failures", failures).Msg("watch query recovered")
			failures = 0
		}
		if meta.ResultsFilteredByACLs && !warnedACL {
			warnedACL = true
			log.Warn().Str("service", name).
				Msg("Consul hid members of this group from the token (ACL filtered): no links will be made to them; give the token service:read on the group's service")
		}
		index = nextIndex(index, meta.LastIndex)
		pub.Publish(c.members(group, entries))
	}
}

// nextIndex returns the wait index for the query that follows one sent
// with wait index prev and answered with index got, after Consul's rules
// for blocking queries:
//   - an answer of 0 is a Consul bug: waiting on 0 would make every query
//     return at once, so 1 is used (the index is never 0 after a query);
//   - an index that went backwards (a snapshot restore, an agent that lost
//     its state) resets the wait index to 0: the next query returns at once
//     with the current state and index, and blocking resumes from there;
//   - otherwise the answer's index.
func nextIndex(prev, got uint64) uint64 {
	switch {
	case got == 0:
		return 1
	case got < prev:
		return 0
	}
	return got
}

// members decodes the service entries of group into members. Entries that
// are not this system's (missing tags, foreign ID, bad incarnation) are
// skipped; when one ID appears on several nodes, the most recently
// modified registration wins.
func (c *Connector) members(group string, entries []*api.ServiceEntry) []registry.Member {
	prefix := c.serviceID("")
	want := c.tags(group)
	byID := make(map[string]int, len(entries))
	modified := make([]uint64, 0, len(entries))
	out := make([]registry.Member, 0, len(entries))
	for _, e := range entries {
		s := e.Service
		if s == nil || !strings.HasPrefix(s.ID, prefix) || !hasAll(s.Tags, want) {
			continue
		}
		inc, err := strconv.ParseUint(s.Meta[metaIncarnation], 10, 64)
		if err != nil {
			continue
		}
		host := s.Address
		if host == "" && e.Node != nil {
			host = e.Node.Address
		}
		m := registry.Member{
			ID:          strings.TrimPrefix(s.ID, prefix),
			Group:       group,
			Address:     net.JoinHostPort(host, strconv.Itoa(s.Port)),
			Incarnation: inc,
		}
		for k, v := range s.Meta {
			if strings.HasPrefix(k, reservedPrefix) {
				continue
			}
			if m.Meta == nil {
				m.Meta = make(map[string]string, len(s.Meta)-1)
			}
			m.Meta[k] = v
		}
		if i, dup := byID[m.ID]; dup {
			if s.ModifyIndex > modified[i] {
				out[i], modified[i] = m, s.ModifyIndex
			}
			continue
		}
		byID[m.ID] = len(out)
		out = append(out, m)
		modified = append(modified, s.ModifyIndex)
	}
	return out
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
