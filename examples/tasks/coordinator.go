package tasks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/examples/internal/cloudloop"
	"github.com/cloudrift/cloudrift/plugins"
	"github.com/cloudrift/cloudrift/protocol"
)

// CoordinatorPlugin is the name the coordinator is registered under.
const CoordinatorPlugin = "tasks-coordinator"

func init() {
	plugins.Register(plugins.Info{Name: CoordinatorPlugin, New: func() plugins.Plugin { return new(Coordinator) }})
}

// tick paces the coordinator's retries of failed posts and releases.
const tick = 200 * time.Millisecond

// Coordinator is the "tasks-coordinator" plugin: the local client of
// RakNet's cloud computing documentation that holds the problem. Run it on one server of an internal
// group that connects to the cloud-memory group.
//
// It splits [From, To) into tasks of Chunk numbers, subscribes to the
// job's ready and result keys, and keeps every ready worker busy: an idle
// worker is posted the next waiting task under its task key. A result of
// the task a worker holds completes it, and the worker is posted its next
// task (or, when none waits, its task row is released). A worker whose
// ready row is deleted (it released it, disconnected or crashed) loses its
// task, which goes back to the front of the queue for the next idle
// worker. A Resync of the ready key is handled the same way: workers it no
// longer lists are gone.
//
// When every task has a result the round is finished; with RestartAfter,
// a new round of the same job starts after that long. Progress is posted
// under ProgressKey at each change.
type Coordinator struct {
	// Job names the job: the prefix of its keys. Required.
	Job string `yaml:"job"`
	// From and To bound the numbers whose primes are counted, [From, To).
	From uint64 `yaml:"from"`
	To   uint64 `yaml:"to"`
	// Chunk is how many numbers one task covers. Zero means
	// (To-From)/100, at least 1.
	Chunk uint64 `yaml:"chunk"`
	// RestartAfter, when positive, starts a new round that long after one
	// finished. Zero: one round.
	RestartAfter config.Duration `yaml:"restartAfter"`

	log  *zerolog.Logger
	cm   plugins.CloudMemory
	loop cloudloop.Loop

	mu     sync.Mutex
	status Status // a copy of the loop's state for Status

	// Owned by the loop goroutine.
	round      uint32
	tasks      []taskState
	waiting    []uint32 // task IDs to hand out, front first
	workers    map[ClientRef]*worker
	releases   map[ClientRef]struct{} // task rows of gone workers to release
	reassigned uint32
	doneCount  uint32
	finishedAt time.Time
	posted     Progress
	hasPosted  bool
}

// taskState is one task of the round.
type taskState struct {
	Task
	done  bool
	count uint64
	by    ClientRef // the worker whose result completed it
}

// worker is a ready worker.
type worker struct {
	ref    ClientRef
	name   string
	task   int  // index of its task, -1 when idle
	posted bool // its task row holds a task of ours
	since  time.Time
}

// Status is the coordinator's state, for embedding code and tests.
type Status struct {
	Progress
	// CompletedBy maps each completed task ID to the worker whose result
	// completed it.
	CompletedBy map[uint32]ClientRef
}

var (
	_ plugins.Validator                = (*Coordinator)(nil)
	_ plugins.Starter                  = (*Coordinator)(nil)
	_ plugins.Stopper                  = (*Coordinator)(nil)
	_ plugins.CloudNotificationHandler = (*Coordinator)(nil)
)

// Validate implements plugins.Validator.
func (c *Coordinator) Validate() error {
	switch {
	case c.Job == "" || len(c.Job) > MaxJobBytes:
		return fmt.Errorf("job: a name of 1 to %d bytes is required", MaxJobBytes)
	case c.To <= c.From:
		return fmt.Errorf("from %d, to %d: want from < to", c.From, c.To)
	case c.RestartAfter < 0:
		return errors.New("restartAfter must not be negative")
	}
	if c.Chunk == 0 {
		c.Chunk = max(1, (c.To-c.From)/100)
	}
	if n := (c.To - c.From + c.Chunk - 1) / c.Chunk; n > 1<<20 {
		return fmt.Errorf("chunk %d makes %d tasks, at most %d", c.Chunk, n, 1<<20)
	}
	return nil
}

// Start implements plugins.Starter.
func (c *Coordinator) Start(_ context.Context, h plugins.Host) error {
	if err := c.Validate(); err != nil {
		return err
	}
	cm, err := h.CloudMemory()
	if err != nil {
		return fmt.Errorf("tasks coordinator: %w", err)
	}
	c.log, c.cm = h.Logger(), cm
	c.workers = make(map[ClientRef]*worker)
	c.releases = make(map[ClientRef]struct{})
	c.newRound()
	c.loop.Start(c.run)
	return nil
}

// Stop implements plugins.Stopper. The coordinator's rows go with its
// server; workers see their task rows deleted.
func (c *Coordinator) Stop(context.Context) error {
	c.loop.Stop() // stopping cancels the loop's cloud operations at once
	return nil
}

// Status returns the coordinator's state as of its last change.
func (c *Coordinator) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	s.CompletedBy = make(map[uint32]ClientRef, len(c.status.CompletedBy))
	for k, v := range c.status.CompletedBy {
		s.CompletedBy[k] = v
	}
	return s
}

// CloudNotification implements plugins.CloudNotificationHandler: it queues
// the notification for the loop.
func (c *Coordinator) CloudNotification(n cloud.Notification) error {
	c.loop.Push(n)
	return nil
}

// newRound splits the range into the tasks of a new round.
func (c *Coordinator) newRound() {
	c.round++
	c.tasks = c.tasks[:0]
	c.waiting = c.waiting[:0]
	for lo, id := c.From, uint32(0); lo < c.To; lo, id = lo+c.Chunk, id+1 {
		c.tasks = append(c.tasks, taskState{Task: Task{Round: c.round, ID: id, Lo: lo, Hi: min(lo+c.Chunk, c.To)}})
		c.waiting = append(c.waiting, id)
	}
	c.reassigned, c.doneCount = 0, 0
	c.finishedAt = time.Time{}
}

func (c *Coordinator) run() {
	if !c.subscribe() {
		return
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		c.step()
		select {
		case <-c.loop.Stopped():
			return
		case <-c.loop.Wake():
		case <-t.C:
		}
	}
}

// subscribe subscribes to the ready and result keys (see
// cloudloop.Loop.Subscribe) and applies the snapshot. It returns false on
// Stop.
func (c *Coordinator) subscribe() bool {
	keys := []Key{ReadyKey(c.Job), ResultKey(c.Job)}
	if _, ok := c.loop.Subscribe(c.cm, keys, c.log, "subscribing to the ready and result keys", c.resync); !ok {
		return false
	}
	c.log.Info().Str("job", c.Job).Int("workers", len(c.workers)).Int("tasks", len(c.tasks)).Msg("coordinating")
	return true
}

// step applies the queued notifications, then hands out tasks, releases
// the rows of gone workers and posts the progress.
func (c *Coordinator) step() {
	for _, n := range c.loop.Take() {
		switch n.Type {
		case cloud.NotifyUpdated:
			c.updated(n.Row)
		case cloud.NotifyDeleted:
			if n.Key == ReadyKey(c.Job) {
				c.gone(n.Row.Uploader, "left")
			}
		case cloud.NotifyResync:
			c.resync(n.Key, n.Rows, n.Truncated)
		}
	}
	if c.doneCount == uint32(len(c.tasks)) && c.finishedAt.IsZero() {
		c.finish()
	}
	if !c.finishedAt.IsZero() && c.RestartAfter > 0 && time.Since(c.finishedAt) >= c.RestartAfter.Duration() {
		c.newRound()
		c.log.Info().Uint32("round", c.round).Msg("new round")
	}
	c.assign()
	c.release()
	c.publish()
}

// updated handles a ready or result row.
func (c *Coordinator) updated(r cloud.Row) {
	switch r.Key {
	case ReadyKey(c.Job):
		if r.Uploader.ID == 0 {
			return // servers are not workers
		}
		if w := c.workers[r.Uploader]; w != nil {
			w.name = string(r.Data)
			return
		}
		c.workers[r.Uploader] = &worker{ref: r.Uploader, name: string(r.Data), task: -1, since: time.Now()}
		delete(c.releases, r.Uploader)
	case ResultKey(c.Job):
		res, err := decodeResult(r.Data)
		w := c.workers[r.Uploader]
		if err != nil || w == nil || w.task < 0 {
			return
		}
		t := &c.tasks[w.task]
		if res.Round != t.Round || res.ID != t.ID {
			return // an older result, seen again in a resync
		}
		t.done, t.count, t.by = true, res.Count, r.Uploader
		c.doneCount++
		w.task = -1
	}
}

// gone ends a worker: its task, if any, goes back to the front of the
// queue, and its task row is released.
func (c *Coordinator) gone(ref ClientRef, why string) {
	w := c.workers[ref]
	if w == nil {
		return
	}
	delete(c.workers, ref)
	if w.task >= 0 {
		t := c.tasks[w.task]
		c.waiting = slices.Insert(c.waiting, 0, t.ID)
		c.reassigned++
		c.log.Info().Str("worker", ref.String()).Str("name", w.name).Stringer("task", t.Task).Msg("worker " + why + " mid-task; task requeued")
	}
	if w.posted {
		c.releases[ref] = struct{}{}
	}
}

// resync applies a snapshot of the ready or result key.
func (c *Coordinator) resync(k Key, rows []cloud.Row, truncated bool) {
	listed := make(map[ClientRef]bool, len(rows))
	for _, r := range rows {
		if r.Key == k {
			listed[r.Uploader] = true
			c.updated(r)
		}
	}
	if k != ReadyKey(c.Job) || truncated {
		return
	}
	for ref := range c.workers {
		if !listed[ref] {
			c.gone(ref, "vanished")
		}
	}
}

// assign posts waiting tasks to idle workers, oldest workers first, and
// releases the task rows of idle workers when nothing waits.
func (c *Coordinator) assign() {
	idle := make([]*worker, 0, len(c.workers))
	for _, w := range c.workers {
		if w.task < 0 {
			idle = append(idle, w)
		}
	}
	slices.SortFunc(idle, func(a, b *worker) int {
		if c := a.since.Compare(b.since); c != 0 {
			return c
		}
		return protocol.CompareRefs(a.ref, b.ref)
	})
	for _, w := range idle {
		if c.loop.Stopping() {
			return
		}
		if len(c.waiting) == 0 {
			if w.posted {
				ctx, cancel := c.loop.Op()
				if err := c.cm.Release(ctx, TaskKey(c.Job, w.ref)); err == nil {
					w.posted = false
				}
				cancel()
			}
			continue
		}
		id := c.waiting[0]
		ctx, cancel := c.loop.Op()
		err := c.cm.Post(ctx, TaskKey(c.Job, w.ref), c.tasks[id].encode())
		cancel()
		if err != nil {
			c.log.Warn().Err(err).Str("worker", w.ref.String()).Msg("posting a task; will retry")
			return
		}
		c.waiting = c.waiting[1:]
		w.task, w.posted = int(id), true
	}
}

// release deletes the task rows of gone workers.
func (c *Coordinator) release() {
	for ref := range c.releases {
		if c.loop.Stopping() {
			return
		}
		ctx, cancel := c.loop.Op()
		err := c.cm.Release(ctx, TaskKey(c.Job, ref))
		cancel()
		if err == nil {
			delete(c.releases, ref)
		}
	}
}

// finish logs the finished round.
func (c *Coordinator) finish() {
	c.finishedAt = time.Now()
	var sum uint64
	for _, t := range c.tasks {
		sum += t.count
	}
	c.log.Info().Uint32("round", c.round).Uint64("primes", sum).Uint32("reassigned", c.reassigned).
		Msgf("round finished: %d primes in [%d, %d)", sum, c.From, c.To)
}

// publish updates Status and posts the progress when it changed.
func (c *Coordinator) publish() {
	p := Progress{Round: c.round, Tasks: uint32(len(c.tasks)), Done: c.doneCount, Reassigned: c.reassigned,
		Workers: uint32(len(c.workers)), Finished: !c.finishedAt.IsZero()}
	by := make(map[uint32]ClientRef)
	for _, t := range c.tasks {
		if t.done {
			p.Result += t.count
			by[t.ID] = t.by
		}
	}
	c.mu.Lock()
	c.status = Status{Progress: p, CompletedBy: by}
	c.mu.Unlock()
	if c.hasPosted && p == c.posted {
		return
	}
	ctx, cancel := c.loop.Op()
	defer cancel()
	if err := c.cm.Post(ctx, ProgressKey(c.Job), p.encode()); err != nil {
		c.log.Warn().Err(err).Msg("posting the progress")
		return
	}
	c.posted, c.hasPosted = p, true
}
