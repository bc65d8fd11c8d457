// Package consul is the registry.Connector backed by Consul
// (github.com/hashicorp/consul/api).
//
// # Naming
//
// A member of group G in system S is the Consul service named
// "cloudrift-S-G", tagged "cloudrift", "system=S" and "group=G", with the
// service ID "S:ID" (ID is Member.ID). Address and port come from
// Member.Address; the service metadata holds the incarnation (decimal, under
// "cloudrift_incarnation") and Member.Meta. A watch only reports services
// that carry all three tags and the "S:" prefix, so two systems sharing one
// Consul never see each other, even if their names happen to concatenate to
// the same service name.
//
// # Liveness
//
// Register adds a TTL check that is passing right away, and a heartbeat
// goroutine renews it every TTL/3. When a renewal finds the check gone (the
// agent restarted and lost its registrations, as a dev agent does), the
// service is registered again with ReplaceExistingChecks. The check sets
// DeregisterCriticalServiceAfter, so a crashed server is first reported
// critical (at most TTL after its last heartbeat) and then removed by Consul.
//
// # Watches
//
// Each Watch runs one goroutine of blocking health queries (passing only)
// and publishes each answer as a full snapshot: removals are found by
// absence. The wait index follows Consul's rules (see nextIndex). Queries
// start at most 20 times a second; errors back off exponentially with
// jitter, from 100 ms up to 5 s. An error never publishes anything: the last
// known set stands until Consul answers again, so an outage never removes
// members. A successful empty answer is published.
//
// # Environment
//
// The standard Consul environment (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN,
// CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_SSL, CONSUL_CACERT, CONSUL_CAPATH,
// CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY, CONSUL_TLS_SERVER_NAME,
// CONSUL_HTTP_SSL_VERIFY, ...) is read by New; every non-zero Config field
// takes precedence over it.
package consul

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/registry"
)

// Defaults for the zero values of Config.
const (
	DefaultTTL             = 5 * time.Second
	DefaultDeregisterAfter = time.Minute
	DefaultWaitTime        = time.Minute

	// MinTTL is the shortest TTL New accepts.
	MinTTL = time.Second
	// MinDeregisterAfter is Consul's own minimum for
	// DeregisterCriticalServiceAfter; shorter values are refused rather
	// than silently raised by Consul.
	MinDeregisterAfter = time.Minute
	// MaxWaitTime is Consul's cap on a blocking query's wait.
	MaxWaitTime = 10 * time.Minute
)

// Sentinel errors of this package, wrapped with %w.
var (
	// ErrUnauthorized is returned when Consul refuses the ACL token: the
	// token does not exist, or its policy does not allow the operation.
	// The message names where the token came from.
	ErrUnauthorized = errors.New("consul: ACL token refused")
	// ErrInvalidConfig is returned by New for a Config it cannot use.
	ErrInvalidConfig = errors.New("consul: invalid config")
)

// Config configures a Connector. Every zero value has a documented meaning;
// fields that name a Consul setting fall back to the standard Consul
// environment variables when empty.
type Config struct {
	// System is the system name from the system file. Required. It names
	// the services (see the package doc) so systems sharing one Consul stay
	// apart. Letters, digits, '_', '.' and '-', starting with a letter or
	// digit.
	System string

	// Address is the agent's HTTP address, host:port, optionally with an
	// "http://", "https://" or "unix://" prefix. Empty means
	// CONSUL_HTTP_ADDR, else 127.0.0.1:8500.
	Address string
	// Scheme is "http" or "https". Empty means https when Address has the
	// https:// prefix or CONSUL_HTTP_SSL is true, else http.
	Scheme string
	// Datacenter for queries. Empty means the agent's own.
	Datacenter string
	// Token is the ACL token. Empty means CONSUL_HTTP_TOKEN_FILE, else
	// CONSUL_HTTP_TOKEN, else no token (the agent's default token).
	Token string
	// TLS configures HTTPS to the agent. Each empty field falls back to its
	// environment variable.
	TLS TLSConfig

	// TTL of the health check. Zero means DefaultTTL (5 s); at least
	// MinTTL. The heartbeat renews the check every TTL/3, and a crashed
	// server stops being passing at most TTL after its last heartbeat.
	TTL time.Duration
	// DeregisterAfter is how long a check may stay critical before Consul
	// removes the service (DeregisterCriticalServiceAfter). Zero means
	// DefaultDeregisterAfter (1 min); at least MinDeregisterAfter.
	DeregisterAfter time.Duration
	// WaitTime is the longest a blocking health query waits for a change.
	// Zero means DefaultWaitTime (1 min); at most MaxWaitTime.
	WaitTime time.Duration

	// Logger receives the connector's logs (heartbeat failures,
	// re-registrations, watch errors and recoveries). The zero value logs
	// nothing.
	Logger zerolog.Logger
}

// TLSConfig is the TLS part of Config. Empty fields fall back to the
// standard environment variables named beside them.
type TLSConfig struct {
	CAFile     string // CONSUL_CACERT
	CAPath     string // CONSUL_CAPATH
	CertFile   string // CONSUL_CLIENT_CERT
	KeyFile    string // CONSUL_CLIENT_KEY
	ServerName string // CONSUL_TLS_SERVER_NAME
	// InsecureSkipVerify disables certificate verification (tests only).
	// False means CONSUL_HTTP_SSL_VERIFY decides (verify unless "false").
	InsecureSkipVerify bool
}

// Connector is the Consul registry.Connector. Create it with New. All
// methods are safe for concurrent use.
type Connector struct {
	client      *api.Client
	http        *http.Client
	system      string
	address     string // as resolved, for messages
	token       string // Config.Token, sent per request when set
	tokenSource string // where the token comes from, for messages
	ttl         time.Duration
	deregAfter  time.Duration
	waitTime    time.Duration
	log         zerolog.Logger

	// ctx is cancelled by Close: it ends watches, heartbeats and requests
	// in flight.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // watch and heartbeat goroutines

	// regMu serializes Register, Deregister and the deregistration in
	// Close, across their requests to Consul. Lock order: regMu, then mu.
	regMu sync.Mutex
	reg   *registration // guarded by regMu

	mu     sync.Mutex
	closed bool // guarded by mu; set once by Close
}

var _ registry.Connector = (*Connector)(nil)

// nameRE is what New accepts as a system name and Register and Watch as a
// group name: the name ends up in a service name and in URL paths.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// New validates cfg and returns a connector. It reads the Consul
// environment but does not contact Consul: the first request is made by
// Register or Watch.
func New(cfg Config) (*Connector, error) {
	if cfg.System == "" {
		return nil, fmt.Errorf("%w: empty system name", ErrInvalidConfig)
	}
	if !nameRE.MatchString(cfg.System) {
		return nil, fmt.Errorf("%w: system name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit",
			ErrInvalidConfig, cfg.System)
	}
	ttl := cfg.TTL
	switch {
	case ttl == 0:
		ttl = DefaultTTL
	case ttl < MinTTL:
		return nil, fmt.Errorf("%w: TTL %v is below the minimum of %v", ErrInvalidConfig, ttl, MinTTL)
	}
	dereg := cfg.DeregisterAfter
	switch {
	case dereg == 0:
		dereg = DefaultDeregisterAfter
	case dereg < MinDeregisterAfter:
		return nil, fmt.Errorf("%w: DeregisterAfter %v is below Consul's minimum of %v",
			ErrInvalidConfig, dereg, MinDeregisterAfter)
	}
	wait := cfg.WaitTime
	switch {
	case wait == 0:
		wait = DefaultWaitTime
	case wait < 0 || wait > MaxWaitTime:
		return nil, fmt.Errorf("%w: WaitTime %v is outside (0, %v]", ErrInvalidConfig, wait, MaxWaitTime)
	}
	switch cfg.Scheme {
	case "", "http", "https":
	default:
		return nil, fmt.Errorf("%w: scheme %q: want http or https", ErrInvalidConfig, cfg.Scheme)
	}

	// DefaultConfig reads the environment; set Config fields win.
	ac := api.DefaultConfig()
	if cfg.Address != "" {
		ac.Address = cfg.Address
	}
	if cfg.Scheme != "" {
		ac.Scheme = cfg.Scheme
	}
	if cfg.Datacenter != "" {
		ac.Datacenter = cfg.Datacenter
	}
	if cfg.Token != "" {
		ac.Token = cfg.Token
		ac.TokenFile = ""
	}
	t := cfg.TLS
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&ac.TLSConfig.CAFile, t.CAFile},
		{&ac.TLSConfig.CAPath, t.CAPath},
		{&ac.TLSConfig.CertFile, t.CertFile},
		{&ac.TLSConfig.KeyFile, t.KeyFile},
		{&ac.TLSConfig.Address, t.ServerName},
	} {
		if f.src != "" {
			*f.dst = f.src
		}
	}
	if t.InsecureSkipVerify {
		ac.TLSConfig.InsecureSkipVerify = true
	}
	// Build the HTTP client here so Close can drop its idle connections.
	hc, err := api.NewHttpClient(ac.Transport, ac.TLSConfig)
	if err != nil {
		return nil, fmt.Errorf("%w: TLS: %v", ErrInvalidConfig, err)
	}
	ac.HttpClient = hc
	address := ac.Address
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	return &Connector{
		client:      client,
		http:        hc,
		system:      cfg.System,
		address:     address,
		token:       cfg.Token,
		tokenSource: tokenSource(cfg.Token),
		ttl:         ttl,
		deregAfter:  dereg,
		waitTime:    wait,
		log:         cfg.Logger.With().Str("registry", "consul").Str("system", cfg.System).Logger(),
		ctx:         ctx,
		cancel:      cancel,
	}, nil
}

// tokenSource describes where the ACL token comes from, following the
// precedence of New and of the api package.
func tokenSource(cfgToken string) string {
	switch {
	case cfgToken != "":
		return "the registry config (token)"
	case os.Getenv(api.HTTPTokenFileEnvName) != "":
		return "the file in " + api.HTTPTokenFileEnvName + " (" + os.Getenv(api.HTTPTokenFileEnvName) + ")"
	case os.Getenv(api.HTTPTokenEnvName) != "":
		return api.HTTPTokenEnvName
	}
	return "nowhere (no token set: the agent's default token applies; set " +
		api.HTTPTokenEnvName + " or the registry config's token)"
}

// Close deregisters the member (best effort, within 2 s), ends every watch
// and heartbeat, waits for their goroutines and drops idle connections. It
// returns the deregistration error, if any; a second Close returns nil.
// Every other method returns registry.ErrClosed after Close.
func (c *Connector) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()

	var err error
	c.regMu.Lock()
	if c.reg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		err = c.endRegistration(ctx)
		cancel()
	}
	c.regMu.Unlock()

	c.wg.Wait()
	c.http.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("consul: close: %w", err)
	}
	return nil
}

// closeTimeout bounds the deregistration in Close.
const closeTimeout = 2 * time.Second

func (c *Connector) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// serviceName returns the Consul service name of group.
func (c *Connector) serviceName(group string) string {
	return "cloudrift-" + c.system + "-" + group
}

// serviceID returns the Consul service ID of member id.
func (c *Connector) serviceID(id string) string { return c.system + ":" + id }

func checkID(serviceID string) string { return "service:" + serviceID }

// tags returns the tags of every service of group.
func (c *Connector) tags(group string) []string {
	return []string{"cloudrift", "system=" + c.system, "group=" + group}
}

// queryOptions returns options for one request bound to ctx.
func (c *Connector) queryOptions(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{Token: c.token}).WithContext(ctx)
}

// mergeCancel returns a context that is done when ctx is done or when the
// connector is closed.
func (c *Connector) mergeCancel(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}
