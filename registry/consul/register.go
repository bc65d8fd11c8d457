package consul

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/cloudrift/cloudrift/registry"
)

// metaIncarnation is the service metadata key of Member.Incarnation. Keys
// with the "cloudrift_" prefix are reserved for the connector.
const (
	metaIncarnation = "cloudrift_incarnation"
	reservedPrefix  = "cloudrift_"
)

// Consul's limits on service metadata (agent/structs: validateMetaPair).
const (
	metaMaxPairs       = 64
	metaKeyMaxLength   = 128
	metaValueMaxLength = 512
)

var (
	metaKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	// idRE is what Register accepts as a member ID: it ends up in URL
	// paths of the agent API.
	idRE = regexp.MustCompile(`^[A-Za-z0-9_.:@~+=-]+$`)
)

// requestTimeout bounds each registration and deregistration request,
// whatever the caller's context allows: a Consul that does not answer must
// not hang Register, Deregister or Close.
const requestTimeout = 10 * time.Second

// registration is the connector's one registered member.
type registration struct {
	member registry.Member // guarded by Connector.regMu; only Meta changes
	// service is the registration as last sent; Update replaces it while
	// the heartbeat reads it to register again.
	service atomic.Pointer[api.AgentServiceRegistration]
	cancel  context.CancelFunc // ends the heartbeat
	done    chan struct{}      // closed when the heartbeat has ended
}

// Register registers self as the service of its group with a TTL check
// that is passing at once, and starts the heartbeat that keeps it passing
// (and registers it again if the agent lost it) until Deregister or Close.
// Besides registry.Member.Validate, the ID must use letters, digits and
// "_.:@~+=-", the group must be a valid name (see Config.System), the
// address host:port with a host, and Meta keys must be valid Consul
// metadata keys (letters, digits, '_' and '-', at most 128 bytes, not
// starting with "consul-" or "cloudrift_"), with values of at most 512
// bytes; otherwise Register returns registry.ErrInvalidMember. A token
// that Consul refuses gives ErrUnauthorized. The request to Consul is
// bounded by ctx and by 10 s.
func (c *Connector) Register(ctx context.Context, self registry.Member) error {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	if c.isClosed() {
		return registry.ErrClosed
	}
	if c.reg != nil {
		return fmt.Errorf("%w: member %s", registry.ErrAlreadyRegistered, c.reg.member.ID)
	}
	svc, err := c.registration(self)
	if err != nil {
		return err
	}
	if err := c.send(ctx, "register "+self.ID, svc); err != nil {
		return err
	}

	hctx, hcancel := context.WithCancel(c.ctx)
	reg := &registration{member: self, cancel: hcancel, done: make(chan struct{})}
	reg.service.Store(svc)
	c.reg = reg
	// Close sets closed before taking regMu, and waits on wg after
	// releasing it: this Add happens before that Wait.
	c.wg.Add(1)
	go c.heartbeat(hctx, reg)
	return nil
}

// Deregister stops the heartbeat and removes the service from Consul (a
// service Consul no longer has counts as removed). The member counts as
// deregistered even when Consul could not be reached: the error is then
// returned, and Consul removes the service once its TTL check has been
// critical for Config.DeregisterAfter. The request is bounded by ctx and by
// 10 s.
func (c *Connector) Deregister(ctx context.Context) error {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	if c.isClosed() {
		return registry.ErrClosed
	}
	if c.reg == nil {
		return registry.ErrNotRegistered
	}
	return c.endRegistration(ctx)
}

// Update implements registry.Updater: it registers the service again with
// self's Meta (the same checks that Register validates), keeping its TTL
// check passing. The request is bounded by ctx and by 10 s; on error the
// previous registration stands.
func (c *Connector) Update(ctx context.Context, self registry.Member) error {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	if c.isClosed() {
		return registry.ErrClosed
	}
	if c.reg == nil {
		return registry.ErrNotRegistered
	}
	if err := registry.CheckUpdate(c.reg.member, self); err != nil {
		return fmt.Errorf("%w: member %q", err, self.ID)
	}
	svc, err := c.registration(self)
	if err != nil {
		return err
	}
	if err := c.send(ctx, "update "+self.ID, svc); err != nil {
		return err
	}
	// Only Meta changes (CheckUpdate); the heartbeat reads ID and Group.
	c.reg.member.Meta = maps.Clone(self.Meta)
	c.reg.service.Store(svc)
	return nil
}

// endRegistration stops the heartbeat and deregisters. regMu must be held
// and c.reg set.
func (c *Connector) endRegistration(ctx context.Context) error {
	reg := c.reg
	c.reg = nil
	reg.cancel()
	<-reg.done
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	svc := reg.service.Load()
	err := c.client.Agent().ServiceDeregisterOpts(svc.ID, c.queryOptions(ctx))
	if err != nil && !isNotFound(err) {
		return c.apiError("deregister "+reg.member.ID, svc.Name, err)
	}
	return nil
}

// registration validates m and builds its Consul service.
func (c *Connector) registration(m registry.Member) (*api.AgentServiceRegistration, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: member %q: %s", registry.ErrInvalidMember, m.ID, fmt.Sprintf(format, args...))
	}
	if !idRE.MatchString(m.ID) {
		return nil, invalid("ID: use letters, digits and _.:@~+=-")
	}
	if !nameRE.MatchString(m.Group) {
		return nil, invalid("group %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", m.Group)
	}
	host, portStr, err := net.SplitHostPort(m.Address)
	if err != nil {
		return nil, invalid("address %q: %v", m.Address, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, invalid("address %q: bad port", m.Address)
	}
	if host == "" {
		return nil, invalid("address %q: no host (advertise an address peers can reach)", m.Address)
	}
	if len(m.Meta) > metaMaxPairs-1 {
		return nil, invalid("%d meta entries, at most %d", len(m.Meta), metaMaxPairs-1)
	}
	meta := make(map[string]string, len(m.Meta)+1)
	for k, v := range m.Meta {
		switch {
		case !metaKeyRE.MatchString(k) || len(k) > metaKeyMaxLength:
			return nil, invalid("meta key %q: use letters, digits, '_' and '-', at most %d bytes", k, metaKeyMaxLength)
		case strings.HasPrefix(k, "consul-") || strings.HasPrefix(k, reservedPrefix):
			return nil, invalid("meta key %q: the prefixes consul- and %s are reserved", k, reservedPrefix)
		case len(v) > metaValueMaxLength:
			return nil, invalid("meta %q: value longer than %d bytes", k, metaValueMaxLength)
		}
		meta[k] = v
	}
	meta[metaIncarnation] = strconv.FormatUint(m.Incarnation, 10)

	id := c.serviceID(m.ID)
	return &api.AgentServiceRegistration{
		ID:      id,
		Name:    c.serviceName(m.Group),
		Tags:    c.tags(m.Group),
		Address: host,
		Port:    int(port),
		Meta:    meta,
		Check: &api.AgentServiceCheck{
			CheckID:                        checkID(id),
			Name:                           "cloudrift heartbeat",
			TTL:                            c.ttl.String(),
			Status:                         api.HealthPassing,
			DeregisterCriticalServiceAfter: c.deregAfter.String(),
		},
	}, nil
}

// send registers svc for Register and Update (op names it in errors),
// bounded by ctx, by Close and by requestTimeout.
func (c *Connector) send(ctx context.Context, op string, svc *api.AgentServiceRegistration) error {
	rctx, cancel := c.mergeCancel(ctx)
	defer cancel()
	rctx, cancelTimeout := context.WithTimeout(rctx, requestTimeout)
	defer cancelTimeout()
	if err := c.register(rctx, svc); err != nil {
		if c.isClosed() {
			return registry.ErrClosed
		}
		return c.apiError(op, svc.Name, err)
	}
	return nil
}

// register registers (or registers again) svc, replacing its checks.
func (c *Connector) register(ctx context.Context, svc *api.AgentServiceRegistration) error {
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true, Token: c.token}.WithContext(ctx)
	return c.client.Agent().ServiceRegisterOpts(svc, opts)
}

// heartbeatInterval is how often the TTL check is renewed.
func (c *Connector) heartbeatInterval() time.Duration { return c.ttl / 3 }

// heartbeat renews the TTL check of reg every TTL/3 until ctx is done, and
// registers the service again when Consul no longer knows the check.
func (c *Connector) heartbeat(ctx context.Context, reg *registration) {
	defer c.wg.Done()
	defer close(reg.done)
	interval := c.heartbeatInterval()
	log := c.log.With().Str("member", reg.member.ID).Str("group", reg.member.Group).Logger()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		rctx, cancel := context.WithTimeout(ctx, max(interval, time.Second))
		svc := reg.service.Load()
		err := c.client.Agent().UpdateTTLOpts(svc.Check.CheckID, "", "pass", c.queryOptions(rctx))
		if err != nil && isMissingCheck(err) {
			// The agent lost the registration (restart): register again.
			err = c.register(rctx, svc)
			if err == nil {
				log.Info().Msg("consul lost the registration; registered again")
			}
		}
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			failing = true
			log.Warn().Err(c.apiError("heartbeat", svc.Name, err)).
				Msg("heartbeat failed; retrying every interval")
		case err != nil:
			log.Debug().Err(err).Msg("heartbeat failed again")
		case failing:
			failing = false
			log.Info().Msg("heartbeat recovered")
		}
	}
}

// isNotFound reports whether err is Consul's 404.
func isNotFound(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// isMissingCheck reports whether a TTL update failed because the agent has
// no such check: a 404 ("Unknown check ID"), or the message older agents
// give.
func isMissingCheck(err error) bool {
	if isNotFound(err) {
		return true
	}
	var se api.StatusError
	return errors.As(err, &se) &&
		(strings.Contains(se.Body, "does not have associated TTL") || strings.Contains(se.Body, "Unknown check"))
}

// apiError wraps err from operation op on service: an ACL refusal becomes
// ErrUnauthorized with a message naming the token's source, and a Consul
// that could not serve wraps registry.ErrUnavailable.
func (c *Connector) apiError(op, service string, err error) error {
	var se api.StatusError
	if errors.As(err, &se) && (se.Code == http.StatusForbidden || se.Code == http.StatusUnauthorized) {
		body := strings.ToLower(se.Body)
		var why string
		switch {
		case strings.Contains(body, "acl not found"), strings.Contains(body, "token not found"):
			why = "the token does not exist on this Consul cluster"
		case strings.Contains(body, "permission denied"):
			why = fmt.Sprintf("the token's policy does not allow it (registering needs service:write on %q, watching needs service:read and node:read)", service)
		default:
			why = "access denied"
		}
		return fmt.Errorf("%w: %s at %s: %s; token from %s (Consul said %d: %s)",
			ErrUnauthorized, op, c.address, why, c.tokenSource, se.Code, se.Body)
	}
	if unavailable(err) {
		return fmt.Errorf("consul: %s at %s: %w: %w", op, c.address, registry.ErrUnavailable, err)
	}
	return fmt.Errorf("consul: %s at %s: %w", op, c.address, err)
}

// unavailable reports whether err means Consul could not serve the request
// for now: no HTTP answer (connection refused, a timeout) other than the
// caller giving up, or a 5xx or 429 answer (no leader elected yet).
func unavailable(err error) bool {
	var se api.StatusError
	if errors.As(err, &se) {
		return se.Code >= 500 || se.Code == http.StatusTooManyRequests
	}
	return !errors.Is(err, context.Canceled)
}
