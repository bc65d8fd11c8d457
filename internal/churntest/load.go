package churntest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cloud"
)

// Entry is an external server the load's clients may connect to.
type Entry struct {
	ID, URL string
}

// LoadConfig sizes the load. Zero values take the defaults in brackets.
type LoadConfig struct {
	Uploaders   int           // clients posting rows [6]
	Subscribers int           // clients holding a View of every key [2]
	Readers     int           // clients doing Gets of every key in a loop [2]
	Keys        int           // keys, "churn-0".."churn-N" [16]
	RowsEach    int           // keys each uploader holds a row under [3]
	Interval    time.Duration // pause between one client's operations [50ms]
	OpTimeout   time.Duration // bound of one operation [10s]
}

func (c LoadConfig) withDefaults() LoadConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Uploaders, 6)
	def(&c.Subscribers, 2)
	def(&c.Readers, 2)
	def(&c.Keys, 16)
	def(&c.RowsEach, 3)
	if c.Interval <= 0 {
		c.Interval = 50 * time.Millisecond
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = 10 * time.Second
	}
	return c
}

// Keys returns the load's keys for cfg.
func Keys(cfg LoadConfig) []cloud.Key {
	cfg = cfg.withDefaults()
	keys := make([]cloud.Key, cfg.Keys)
	for i := range keys {
		keys[i] = cloud.Key{Primary: "churn-" + strconv.Itoa(i)}
	}
	return keys
}

// Load runs game clients against the cloud memory through external
// servers and feeds a Checker: uploaders post their rows again and again,
// subscribers hold a View of every key, readers Get every key in a loop.
// A client whose connection ends connects again (as a new client) through
// a server Entries names. Start it, Quiesce it to stop posting, then Stop.
type Load struct {
	cfg     LoadConfig
	keys    []cloud.Key
	check   *Checker
	entries func() []Entry

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	quiet  atomic.Bool
	next   atomic.Uint64 // round robin over entries

	mu   sync.Mutex
	subs []*subscriber // the current connection of each subscriber
}

type subscriber struct {
	c    *client.Client
	view *client.View
}

// NewLoad prepares a load; entries returns the servers clients may connect
// to now.
func NewLoad(cfg LoadConfig, check *Checker, entries func() []Entry) *Load {
	cfg = cfg.withDefaults()
	return &Load{cfg: cfg, keys: Keys(cfg), check: check, entries: entries}
}

// Keys returns the load's keys.
func (l *Load) Keys() []cloud.Key { return l.keys }

// Start starts every client; each connects in the background.
func (l *Load) Start() {
	l.ctx, l.cancel = context.WithCancel(context.Background())
	for i := 0; i < l.cfg.Uploaders; i++ {
		l.goRun("uploader", func(c *client.Client, rec *clientRecord) { l.upload(i, c, rec) })
	}
	for i := 0; i < l.cfg.Subscribers; i++ {
		l.goRun("subscriber", func(c *client.Client, _ *clientRecord) { l.subscribe(c) })
	}
	for i := 0; i < l.cfg.Readers; i++ {
		l.goRun("reader", func(c *client.Client, _ *clientRecord) { l.read(c) })
	}
}

// goRun keeps one client of role connected, calling session with each
// connection until it ends or the load stops.
func (l *Load) goRun(role string, session func(*client.Client, *clientRecord)) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for l.ctx.Err() == nil {
			es := l.entries()
			if len(es) == 0 {
				l.sleep(100 * time.Millisecond)
				continue
			}
			e := es[int(l.next.Add(1))%len(es)]
			opts := client.Options{URL: e.URL, DialTimeout: 5 * time.Second}
			var rec *clientRecord
			if role == "subscriber" {
				opts.OnCloud = l.check.checkNote
			}
			c, err := client.Dial(l.ctx, opts)
			if err != nil {
				l.sleep(100 * time.Millisecond)
				continue
			}
			rec = l.check.connected(role, e.ID)
			session(c, rec)
			stopped := l.ctx.Err() != nil
			c.Close()
			l.check.ended(rec, stopped, c.Err())
		}
	}()
}

func (l *Load) sleep(d time.Duration) {
	select {
	case <-l.ctx.Done():
	case <-time.After(d):
	}
}

// alive reports whether c and the load both run.
func (l *Load) alive(c *client.Client) bool {
	select {
	case <-c.Done():
		return false
	case <-l.ctx.Done():
		return false
	default:
		return true
	}
}

// upload posts the uploader's rows in turn, each with the next value,
// until the connection or the load ends; once quiet, it posts again only
// what was not confirmed.
func (l *Load) upload(i int, c *client.Client, rec *clientRecord) {
	ref := c.Ref()
	l.check.addUploader(ref, rec.server)
	defer l.check.endUploader(ref)
	var seq uint64
	for n := 0; l.alive(c); n++ {
		var k cloud.Key
		if l.quiet.Load() {
			ks := l.check.unconfirmed(ref)
			if len(ks) == 0 {
				l.sleep(l.cfg.Interval)
				continue
			}
			k = ks[0]
		} else {
			k = l.keys[(i*l.cfg.RowsEach+n%l.cfg.RowsEach)%len(l.keys)]
		}
		seq++
		l.check.posting(ref, k, seq)
		ctx, cancel := context.WithTimeout(l.ctx, l.cfg.OpTimeout)
		err := c.Post(ctx, k, []byte(strconv.FormatUint(seq, 10)))
		cancel()
		switch {
		case err == nil:
			l.check.posted(ref, k, seq, postConfirmed)
		case errors.Is(err, cloud.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || !l.alive(c):
			l.check.posted(ref, k, seq, postUnknown)
		default:
			l.check.posted(ref, k, seq, postRefused)
		}
		l.sleep(l.cfg.Interval)
	}
}

// subscribe holds a View of every key until the connection or the load
// ends.
func (l *Load) subscribe(c *client.Client) {
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.OpTimeout)
	v, err := c.View(ctx, l.keys)
	cancel()
	if err != nil {
		l.sleep(l.cfg.Interval)
		return
	}
	s := &subscriber{c: c, view: v}
	l.mu.Lock()
	l.subs = append(l.subs, s)
	l.mu.Unlock()
	select {
	case <-c.Done():
	case <-l.ctx.Done():
	}
	l.mu.Lock()
	for j, x := range l.subs {
		if x == s {
			l.subs = append(l.subs[:j], l.subs[j+1:]...)
			break
		}
	}
	l.mu.Unlock()
}

// read Gets every key in a loop, checking each answer.
func (l *Load) read(c *client.Client) {
	for l.alive(c) {
		sent := time.Now()
		req := l.check.expect(l.keys)
		ctx, cancel := context.WithTimeout(l.ctx, l.cfg.OpTimeout)
		res, err := c.Get(ctx, cloud.Query{Keys: l.keys})
		cancel()
		if err != nil && !l.alive(c) {
			return // the connection ended: no answer to judge
		}
		l.check.checkGet(sent, req, l.keys, res, err)
		l.sleep(l.cfg.Interval)
	}
}

// Quiesce stops posting new values; uploaders keep posting again what was
// not confirmed, so that every row's latest value is known.
func (l *Load) Quiesce() { l.quiet.Store(true) }

// Resume undoes Quiesce.
func (l *Load) Resume() { l.quiet.Store(false) }

// Settle waits, until deadline, for the cloud memory to be consistent:
// a fresh Get through each subscriber's connection holds exactly what
// the checker expects (Checker.Settled) and equals the subscriber's View,
// and every View is complete. Call it after Quiesce. It returns when the
// check first passed, or the last problem.
func (l *Load) Settle(deadline time.Time) (time.Time, error) {
	problem := "no subscriber connected"
	for time.Now().Before(deadline) {
		if problem = l.settledOnce(); problem == "" {
			return time.Now(), nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Time{}, errors.New(problem)
}

func (l *Load) settledOnce() string {
	l.mu.Lock()
	subs := append([]*subscriber(nil), l.subs...)
	l.mu.Unlock()
	if len(subs) < l.cfg.Subscribers {
		return fmt.Sprintf("%d of %d subscribers connected", len(subs), l.cfg.Subscribers)
	}
	for _, s := range subs {
		ctx, cancel := context.WithTimeout(l.ctx, l.cfg.OpTimeout)
		res, err := s.c.Get(ctx, cloud.Query{Keys: l.keys})
		cancel()
		if err != nil {
			return "Get: " + err.Error()
		}
		if p := l.check.Settled(l.keys, res); p != "" {
			return p
		}
		if !s.view.Complete() {
			return "a View is not complete"
		}
		if p := sameRows(s.view.Rows(), res.Rows); p != "" {
			return "a View differs from a fresh Get: " + p
		}
	}
	return ""
}

// sameRows compares a View's rows with a Get's.
func sameRows(view, get []cloud.Row) string {
	type id struct {
		k  cloud.Key
		up client.ClientRef
	}
	vs := make(map[id]string, len(view))
	for _, r := range view {
		vs[id{r.Key, r.Uploader}] = string(r.Data)
	}
	if len(view) != len(get) {
		return fmt.Sprintf("%d rows in the View, %d in the Get", len(view), len(get))
	}
	for _, r := range get {
		if d, ok := vs[id{r.Key, r.Uploader}]; !ok || d != string(r.Data) {
			return fmt.Sprintf("row %s of %s: View %q (held %v), Get %q", r.Key, r.Uploader, d, ok, r.Data)
		}
	}
	return ""
}

// Stop ends every client and waits for their goroutines.
func (l *Load) Stop() {
	l.cancel()
	l.wg.Wait()
}
