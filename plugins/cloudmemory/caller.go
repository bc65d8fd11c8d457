package cloudmemory

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/internal/backoff"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/plugins/extension"
	"github.com/cloudrift/cloudrift/protocol"
	"github.com/cloudrift/cloudrift/protocol/cloudwire"
	"github.com/cloudrift/cloudrift/rendezvous"
)

// Caller is the caller side of the cloud memory: the plugin through which
// a server whose group connects to a cloud-memory group reaches the
// replicas. The cloudmemory plugin attaches it to such servers (the
// runtime hosts it first among their plugins) with the cloud group's name
// and settings; nobody lists it in a system file.
//
// The caller keeps every row uploaded through its server (the server's
// own and, on an external server, its game clients') and where each is
// placed, every subscription of its server's plugins and clients, and the
// cloud group's members. Keys are owned by rendezvous hashing over the
// members (ServerJoined to ServerLeft, linked or not); a replica that
// disagrees (its registry view differs for a moment) answers "not owner"
// and the caller retries after a backoff. Whenever a member joins or
// leaves, a replica link comes up, or a replica hands keys over, the
// caller re-posts the rows whose owner moved, re-places the subscriptions
// and sends their subscribers a resync; on a new link it brackets the
// re-posts in a sync session so that the replica deletes whatever it
// still holds from this server that was not posted again. Once every row
// of a replica's keys is placed there, it tells the replica so
// (SyncRing), which then serves the keys it took over.
//
// Its work is spread by job: placement.go follows the replica links and
// places rows and subscriptions, post.go and release.go carry the rows'
// operations, get.go and subs.go the reads and subscriptions, session.go
// the plugins' and game clients' sessions, frames.go the replicas'
// answers.
//
// Lock order: Caller.mu before session.mu. Methods named *Locked expect
// Caller.mu held. Callbacks handed to operations (done functions) run
// with Caller.mu held and must not block.
type Caller struct {
	group    string // the cloud-memory group
	settings Config // the cloud group's settings, as given

	cfg    Config
	host   extension.Host
	log    *zerolog.Logger
	self   ref         // this server's uploader identity
	budget int         // row bytes one replica result may carry
	strs   stringsPool // for decoding the replicas' and clients' frames
	bufs   bufPool     // for encoding the frames it sends
	// filters: a plugin beside it filters cloud operations
	// (extension.Host.FiltersCloud); without, none is built to be filtered.
	filters bool

	started atomic.Bool
	stop    chan struct{}
	wake    chan struct{}
	wg      sync.WaitGroup

	mu        sync.Mutex
	stopped   bool
	gen       uint64              // generation of the latest replica link; 0 until one links
	joined    bool                // a replica joined since Start
	replicas  map[string]*replica // the cloud group's members by ID
	ring      rendezvous.Ring     // over the members
	digest    uint64              // cloudwire.RingDigest of ring
	seq       uint64              // request IDs
	rows      map[rowID]*placedRow
	uploaders map[ref]*uploader
	unplaced  map[rowID]struct{} // rows to place with their owner
	calls     map[uint64]*call   // requests in flight
	subs      map[key]*ksub
	resync    map[key]struct{} // subscriptions to place again
	clientSub map[uint64]*subscriber
	ops       map[*getOp]struct{}
	getExp    expiries // the Gets, by GetTimeout
	opExp     expiries // the waiters, by OpTimeout
}

var (
	_ plugins.Starter                   = (*Caller)(nil)
	_ plugins.Stopper                   = (*Caller)(nil)
	_ plugins.Validator                 = (*Caller)(nil)
	_ extension.FrameHandler            = (*Caller)(nil)
	_ plugins.ServerJoinedHandler       = (*Caller)(nil)
	_ plugins.ServerConnectedHandler    = (*Caller)(nil)
	_ plugins.ServerDisconnectedHandler = (*Caller)(nil)
	_ plugins.ServerLeftHandler         = (*Caller)(nil)
	_ plugins.ClientDisconnectedHandler = (*Caller)(nil)
	_ extension.CloudMemoryProvider     = (*Caller)(nil)
)

// Tuning.
const (
	tick            = 20 * time.Millisecond  // the syncer's period while work is pending
	retryMin        = 10 * time.Millisecond  // first retry after "not owner"
	retryMax        = 250 * time.Millisecond // retry backoff cap
	maxSyncInflight = 512                    // background re-posts in flight per replica
)

// retryDelay returns the wait before retrying what an owner refused
// attempts times in a row: jittered, doubling from retryMin to retryMax.
func retryDelay(attempts int) time.Duration {
	return backoff.Policy{Min: retryMin, Max: retryMax}.Delay(attempts)
}

// place is where a row or subscription lives: a replica's link generation.
type place struct {
	id  string
	gen uint64 // 0: nowhere
}

// replica is a member of the cloud group.
type replica struct {
	rs       plugins.RemoteServer // the member's incarnation
	linked   bool                 // its link is up
	at       place                // its latest link; gen 0 until one came up
	inflight int                  // background re-posts in flight
	// confirmed is the ring digest last confirmed to it over this link
	// (SyncRing); 0: none.
	confirmed uint64
	// session lists the rows to post again before CloudSyncEnd; nil when
	// no sync session runs.
	session map[rowID]struct{}
}

type callKind uint8

const (
	callPost callKind = iota + 1
	callRelease
	callGet
	callResync
)

// call is a request in flight to a replica.
type call struct {
	kind callKind
	to   place
	sync bool // a background re-post
	// post
	row     *placedRow
	version uint64
	data    []byte
	addr    string
	// release
	rel *releaseOp
	// get
	part getPart
	// resync
	key key
}

// Validate implements plugins.Validator.
func (c *Caller) Validate() error { return c.settings.Validate() }

// Start implements plugins.Starter.
func (c *Caller) Start(_ context.Context, h plugins.Host) error {
	eh, err := extensionHost(h)
	if err != nil {
		return err
	}
	c.cfg = c.settings.withDefaults()
	c.host = eh
	c.filters = eh.FiltersCloud()
	c.log = h.Logger()
	c.self = ref{Server: h.ServerID()}
	c.budget = min(c.cfg.MaxBytesPerDownload, eh.MaxFramePayload()/2)
	c.stop = make(chan struct{})
	c.wake = make(chan struct{}, 1)
	c.replicas = make(map[string]*replica)
	c.rows = make(map[rowID]*placedRow)
	c.uploaders = make(map[ref]*uploader)
	c.unplaced = make(map[rowID]struct{})
	c.calls = make(map[uint64]*call)
	c.subs = make(map[key]*ksub)
	c.resync = make(map[key]struct{})
	c.clientSub = make(map[uint64]*subscriber)
	c.ops = make(map[*getOp]struct{})
	c.getExp.start(&c.mu, c.cfg.GetTimeout.Duration())
	c.opExp.start(&c.mu, c.cfg.OpTimeout.Duration())
	c.wg.Add(1)
	go c.syncLoop()
	c.started.Store(true)
	return nil
}

// Stop implements plugins.Stopper: the replicas delete this server's rows
// at once, and pending operations fail.
func (c *Caller) Stop(context.Context) error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	bye := (&cloudwire.SrvSync{Op: cloudwire.SyncBye}).AppendTo(nil)
	for _, rep := range c.replicas {
		if rep.linked {
			_ = c.host.SendFrame(rep.rs, protocol.KindCloudSrvSync, 0, bye)
		}
	}
	for _, r := range c.rows {
		c.resolveLocked(r, ^uint64(0), cloud.CodeShuttingDown, "server shutting down")
	}
	for op := range c.ops {
		c.finishGetLocked(op, cloud.CodeShuttingDown, "server shutting down")
	}
	calls := c.calls
	c.calls = make(map[uint64]*call)
	for _, cl := range calls {
		if cl.rel != nil {
			cl.rel.fail(cloud.CodeShuttingDown, "server shutting down")
			c.releaseDoneLocked(cl.rel)
		}
	}
	c.mu.Unlock()
	close(c.stop)
	c.wg.Wait()
	return nil
}

// Ref is this server's uploader identity.
func (c *Caller) Ref() plugins.ClientRef { return c.self }

func (c *Caller) nextReqLocked() uint64 {
	c.seq++
	return c.seq
}

func (c *Caller) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
