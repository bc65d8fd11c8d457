package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/internal/backoff"
	"github.com/cloudrift/cloudrift/protocol"
)

// Defaults for the zero values of Reconnector.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// Reconnector keeps a client connected to one server of a group: it
// dials, hands each new client to OnConnect, follows the server's Move
// requests (connecting elsewhere before closing the old session), and
// after a session ends dials again after a backoff, trying the servers in
// turn. Its Views (Reconnector.View) are subscribed again on every new
// connection, and with Repost the rows the client posted are posted
// again. Set its fields, then call Run. A Reconnector must not be copied
// after Run is first called, and Run must not run twice at once.
//
// The servers come from three places, tried in this order at every
// connection: the Directory (its servers that are not draining, least
// loaded first), then Options.URL and URLs in turn (starting one further
// at every connection, so that reconnects spread over them). A directory
// that cannot be read is skipped; at least one of the three must be set.
type Reconnector struct {
	// Options for every Dial; Options.URL, when set, is the first of the
	// servers URLs lists. With Options.Handler set, the same Handler
	// receives the messages of every connection in turn. Credentials for
	// servers learned from the directory or a Move must ride in
	// Options.Header (a token in Options.URL's query is not copied to
	// them).
	Options Options

	// URLs are more servers' WebSocket endpoints (ws:// or wss://).
	URLs []string

	// Directory, when set, is a group's directory, http(s)://host:port/servers
	// on any server's client port. It is read before every connection,
	// within Options.DialTimeout, with HTTPClient (nil: a client that
	// uses Options.TLSConfig).
	Directory  string
	HTTPClient *http.Client

	// Repost makes each new connection post again the rows the previous
	// ones posted (Client.Post) and did not release, with the latest data
	// of each key: rows live only as long as the connection that posted
	// them. A key the application posts or releases on the new connection
	// first is left as it made it. A repost that fails is retried, with
	// the backoff, while the connection lasts.
	Repost bool

	// MinBackoff is the first wait after a connection ends or every
	// server failed to connect; each further failure doubles the wait up
	// to MaxBackoff. Every wait is jittered down by up to half, so that
	// clients dropped together do not return together. A connection that
	// lasted at least MaxBackoff resets the wait to MinBackoff. Zero or
	// negative means DefaultMinBackoff (100ms) and DefaultMaxBackoff
	// (10s); a MaxBackoff below MinBackoff is raised to it.
	MinBackoff, MaxBackoff time.Duration

	// OnConnect, when set, is called on Run's goroutine with each new
	// client, before Run starts watching it. It should return promptly:
	// start goroutines for long work. In channel style (no
	// Options.Handler) it must arrange for the client's Messages to be
	// drained. The client is closed by Run when it ends, when it moves or
	// when Run's context ends; OnConnect's goroutines should stop at
	// c.Done().
	OnConnect func(c *Client)

	// OnFailover, when set, is called on Run's goroutine after OnConnect
	// for every connection but the first: the client moved, or its
	// previous session ended and it connected again.
	OnFailover func(Failover)

	mu      sync.Mutex
	cur     *Client
	views   []*View
	running bool
	err     error // what Run returned last
	next    int   // where the next turn over the configured URLs starts
}

// Failover describes one move of a Reconnector from a server to another.
type Failover struct {
	From, To       string // the servers' IDs (their welcomes')
	FromURL, ToURL string
	// Reason is why: protocol.ReasonDraining for a Move (or a Close of
	// that reason), the server's reason when it closed the session, and
	// protocol.ReasonIO when the connection failed without one.
	Reason protocol.Reason
	// Err is how the previous session ended; nil when it moved (Run
	// closed it once the new session was up).
	Err error
	// Duration is from the Move's arrival, or the previous session's
	// end, to the new session's welcome.
	Duration time.Duration
}

// loss is a session that ended or moved, for its Failover.
type loss struct {
	from, url string
	reason    protocol.Reason
	err       error
	at        time.Time
}

// Run keeps a client connected until ctx ends, then closes it and returns
// ctx's error; or until the server refuses or ends the client with
// protocol.ReasonAuthRefused, which retrying will not fix, and returns
// that error (matching ErrAuthRefused). Every other dial failure or end of
// a session (including the server's other reasons) is retried after a
// backoff. Invalid settings are returned at once.
func (r *Reconnector) Run(ctx context.Context) error {
	if err := r.check(); err != nil {
		return err
	}
	r.mu.Lock()
	r.running, r.err = true, nil
	r.mu.Unlock()
	hc, closeHC := r.httpClient()
	err := r.run(ctx, hc)
	closeHC()
	r.mu.Lock()
	r.running, r.err = false, err
	r.mu.Unlock()
	return err
}

// check validates the settings.
func (r *Reconnector) check() error {
	o := r.Options
	if o.URL == "" {
		if len(r.URLs) == 0 && r.Directory == "" {
			return errors.New("client: Reconnector has no server: set Options.URL, URLs or Directory")
		}
		o.URL = "ws://placeholder/" // the other options are checked below
	}
	if _, err := o.withDefaults(); err != nil {
		return err
	}
	for _, u := range r.URLs {
		if err := checkWSURL(u); err != nil {
			return fmt.Errorf("client: Reconnector.URLs: %w", err)
		}
	}
	if r.Directory != "" {
		if err := checkDirectoryURL(r.Directory); err != nil {
			return err
		}
	}
	return nil
}

// httpClient returns the client for the directory and what releases it.
func (r *Reconnector) httpClient() (*http.Client, func()) {
	if r.HTTPClient != nil || r.Directory == "" {
		return r.HTTPClient, func() {}
	}
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: r.Options.TLSConfig}
	return &http.Client{Transport: tr}, tr.CloseIdleConnections
}

func (r *Reconnector) run(ctx context.Context, hc *http.Client) error {
	policy := r.policy()
	failures := 0 // consecutive connections that ended early, or dials that failed
	var lost *loss
	var carry map[cloud.Key][]byte // rows to post again
	avoid := ""                    // the server just left: tried last
	for {
		c, u, err := r.dialAny(ctx, r.candidates(ctx, hc, avoid, false))
		var old *Client // the session moved from, closed once c has restored
		for err == nil {
			since := time.Now()
			restored, stopRestore := r.adopt(ctx, c, u, lost, carry)
			if old != nil {
				// Make before break: the old session stays until the new
				// one has subscribed the views and posted the rows again
				// (or tried to, for as long as a dial may take).
				r.waitRestored(ctx, c, restored)
				old.Close()
				old = nil
			}
			mv, moved := r.watch(ctx, c, u, hc)
			if moved.c != nil {
				stopRestore()
				carry = carryRows(carry, c)
				r.handOver(c)
				old = c
				lost = &loss{from: c.Ref().Server, url: u, reason: mv.Reason, at: moved.at}
				c, u = moved.c, moved.url
				continue
			}
			r.handOver(c)
			c.Close()
			stopRestore()
			err = c.Err()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			carry = carryRows(carry, c)
			lost = &loss{from: c.Ref().Server, url: u, reason: reasonOf(err), err: err, at: time.Now()}
			if time.Since(since) >= policy.Max {
				failures = 0
			}
			avoid = u
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrAuthRefused) {
			return err
		}
		failures++
		if !backoff.Sleep(ctx, policy.Delay(failures)) {
			return ctx.Err()
		}
	}
}

// moved is the session a Move led to.
type moved struct {
	c   *Client
	url string
	at  time.Time // when the Move arrived
}

// watch waits for c to end, ctx to end, or a Move that it follows: it
// returns the Move and the new session once one is up. When no server
// takes the client, c stays until it ends (or the next Move).
func (r *Reconnector) watch(ctx context.Context, c *Client, u string, hc *http.Client) (Move, moved) {
	for {
		select {
		case <-c.Done():
			return Move{}, moved{}
		case <-ctx.Done():
			return Move{}, moved{}
		case mv := <-c.Moved():
			at := time.Now()
			var urls []string
			for _, m := range mv.URLs {
				if checkWSURL(m) == nil && m != u {
					urls = append(urls, m)
				}
			}
			// The Move's servers first; the directory is read (which
			// may take a while) only when none of them takes the client.
			nc, nu, err := r.dialAny(ctx, urls)
			if err != nil && ctx.Err() == nil && !errors.Is(err, ErrAuthRefused) {
				more := slices.DeleteFunc(r.candidates(ctx, hc, u, true), func(m string) bool { return slices.Contains(urls, m) })
				nc, nu, err = r.dialAny(ctx, more)
			}
			if err == nil {
				return mv, moved{c: nc, url: nu, at: at}
			}
		}
	}
}

// candidates returns the servers to try, in order: the directory's, then
// the configured URLs from where the last turn stopped. The URL avoid is
// tried last, or, with drop, not at all.
func (r *Reconnector) candidates(ctx context.Context, hc *http.Client, avoid string, drop bool) []string {
	var out []string
	if r.Directory != "" {
		dctx, cancel := context.WithTimeout(ctx, r.dialTimeout())
		d, err := FetchDirectory(dctx, hc, r.Directory)
		cancel()
		if err == nil {
			out = appendNew(out, d.URLs()...)
		}
	}
	var conf []string
	if r.Options.URL != "" {
		conf = append(conf, r.Options.URL)
	}
	conf = append(conf, r.URLs...)
	if n := len(conf); n > 0 {
		r.mu.Lock()
		start := r.next % n
		r.next = start + 1
		r.mu.Unlock()
		out = appendNew(out, conf[start:]...)
		out = appendNew(out, conf[:start]...)
	}
	if i := slices.Index(out, avoid); i >= 0 && avoid != "" {
		out = slices.Delete(out, i, i+1)
		if !drop {
			out = append(out, avoid)
		}
	}
	return out
}

// appendNew appends the URLs of add that dst does not hold yet.
func appendNew(dst []string, add ...string) []string {
	for _, u := range add {
		if !slices.Contains(dst, u) {
			dst = append(dst, u)
		}
	}
	return dst
}

func (r *Reconnector) dialTimeout() time.Duration {
	if r.Options.DialTimeout > 0 {
		return r.Options.DialTimeout
	}
	return DefaultDialTimeout
}

// dialAny dials urls in order and returns the first client that
// connects. A refusal with protocol.ReasonAuthRefused stops it at once.
func (r *Reconnector) dialAny(ctx context.Context, urls []string) (*Client, string, error) {
	if len(urls) == 0 {
		return nil, "", errors.New("client: no server to connect to (the directory gave none)")
	}
	var errs []error
	for _, u := range urls {
		o := r.Options
		o.URL = u
		o.keepPosted = r.Repost
		c, err := Dial(ctx, o)
		if err == nil {
			return c, u, nil
		}
		if errors.Is(err, ErrAuthRefused) || ctx.Err() != nil {
			return nil, "", err
		}
		errs = append(errs, err)
	}
	return nil, "", errors.Join(errs...)
}

// adopt makes c the current client: it attaches the views, starts
// subscribing them and posting carry again, and calls OnConnect and
// OnFailover. It returns a channel closed once every view and row was
// tried once, and what stops the restoring and waits for it.
func (r *Reconnector) adopt(ctx context.Context, c *Client, u string, lost *loss, carry map[cloud.Key][]byte) (<-chan struct{}, func()) {
	welcomed := time.Now()
	r.mu.Lock()
	r.cur = c
	groups := c.attachViews(r.views...)
	r.mu.Unlock()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	tried := make(chan struct{})
	go func() {
		defer close(done)
		r.restore(rctx, c, groups, maps.Clone(carry), tried)
	}()
	if r.OnConnect != nil {
		r.OnConnect(c)
	}
	if lost != nil && r.OnFailover != nil {
		r.OnFailover(Failover{
			From: lost.from, To: c.Ref().Server, FromURL: lost.url, ToURL: u,
			Reason: lost.reason, Err: lost.err, Duration: welcomed.Sub(lost.at),
		})
	}
	return tried, func() {
		cancel()
		<-done
	}
}

// waitRestored waits until c has tried to restore every view and row
// once, c or ctx ended, or a dial's timeout passed.
func (r *Reconnector) waitRestored(ctx context.Context, c *Client, tried <-chan struct{}) {
	t := time.NewTimer(r.dialTimeout())
	defer t.Stop()
	select {
	case <-tried:
	case <-c.Done():
	case <-ctx.Done():
	case <-t.C:
	}
}

// handOver detaches the views from c, which is ending or moving: they
// keep their rows, incomplete, until the next connection subscribes them.
func (r *Reconnector) handOver(c *Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == c {
		r.cur = nil
	}
	for _, v := range r.views {
		if v.client() == c {
			c.detachView(v)
			v.unsubscribed()
		}
	}
}

// restore subscribes the views' keys (groups) and posts rows on c,
// retrying each failure with the backoff while c and ctx last. It closes
// tried once it has tried each of them once.
func (r *Reconnector) restore(ctx context.Context, c *Client, groups []unionGroup, rows map[cloud.Key][]byte, tried chan<- struct{}) {
	markTried := sync.OnceFunc(func() { close(tried) })
	defer markTried()
	policy := r.policy()
	for failures := 0; len(groups) > 0 || len(rows) > 0; {
		if failures == 1 {
			markTried()
		}
		if failures > 0 && !backoff.Sleep(ctx, policy.Delay(failures)) {
			return
		}
		if c.Err() != nil || ctx.Err() != nil {
			return
		}
		// A pass stops at the first rate-limited answer: every further
		// request would be refused too, and enough refusals end the
		// session for flooding. The backoff comes first.
		failed, limited := false, false
		try := func(err error) bool {
			failed = failed || err != nil
			limited = limited || errors.Is(err, cloud.ErrRateLimited)
			return err == nil
		}
		groups = slices.DeleteFunc(groups, func(g unionGroup) bool {
			return !limited && try(c.viewSubscribe(ctx, g))
		})
		for k, d := range rows {
			if limited {
				break
			}
			if try(c.post(ctx, k, d, false)) {
				delete(rows, k)
			}
		}
		if failed {
			failures++
		}
	}
}

// carryRows returns the rows to post on the next connection: those c
// posted and did not release, and those of carry that c did not get to
// post and the application did not touch on c.
func carryRows(carry map[cloud.Key][]byte, c *Client) map[cloud.Key][]byte {
	rows := c.postedRows()
	cs := &c.cloud
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for k, d := range carry {
		if _, ok := rows[k]; !ok && !cs.touched[k] {
			if rows == nil {
				rows = make(map[cloud.Key][]byte)
			}
			rows[k] = d
		}
	}
	return rows
}

// reasonOf returns the close reason of a session's end.
func reasonOf(err error) protocol.Reason {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return protocol.ReasonIO
}

// View subscribes to keys (limited to uploaders, when given) on the
// current connection and on every later one: the view survives failovers
// and converges again on each new server (Complete is false from a
// session's end until the new snapshot has arrived). It returns once the
// snapshot has arrived, or at once, incomplete, between connections. Close
// it when done; its Err is nil while Run runs.
func (r *Reconnector) View(ctx context.Context, keys []cloud.Key, uploaders ...ClientRef) (*View, error) {
	if err := validKeys(keys); err != nil {
		return nil, err
	}
	v := newView(keys, uploaders)
	v.r = r
	r.mu.Lock()
	r.views = append(r.views, v)
	c := r.cur
	var groups []unionGroup
	if c != nil {
		groups = c.attachViews(v)
	}
	r.mu.Unlock()
	for _, g := range groups {
		if err := c.viewSubscribe(ctx, g); err != nil {
			if c.Err() != nil {
				return v, nil // the connection ended: the next one subscribes it
			}
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.dialTimeout())
			v.Close(cctx)
			cancel()
			return nil, err
		}
	}
	return v, nil
}

// forgetView drops a closed view from the reconnector's.
func (r *Reconnector) forgetView(v *View) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.views = slices.DeleteFunc(r.views, func(o *View) bool { return o == v })
}

// runErr is a reconnector view's Err: nil while Run runs, then what it
// returned.
func (r *Reconnector) runErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return nil
	}
	return r.err
}

// Current returns the connected client, or nil between connections. The
// returned client may end at any moment; its Send then reports ErrClosed.
func (r *Reconnector) Current() *Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// policy returns the backoff of MinBackoff and MaxBackoff, with defaults
// applied and MaxBackoff raised to MinBackoff.
func (r *Reconnector) policy() backoff.Policy {
	minB, maxB := r.MinBackoff, r.MaxBackoff
	if minB <= 0 {
		minB = DefaultMinBackoff
	}
	if maxB <= 0 {
		maxB = DefaultMaxBackoff
	}
	return backoff.Policy{Min: minB, Max: max(minB, maxB)}
}
