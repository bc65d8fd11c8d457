package tasks

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cloudrift/cloudrift/client"
)

// Worker processes a job's tasks on a connected game client. Set its
// fields, then call Run.
type Worker struct {
	// Client is the worker's connection. Required.
	Client *client.Client
	// Job is the job's name (the coordinator's). Required.
	Job string
	// Name is posted in the ready row, for logs.
	Name string
	// Compute solves a task. It should return when ctx ends. Nil means
	// counting the primes of [Lo, Hi) with CountPrimes.
	Compute func(ctx context.Context, t Task) (uint64, error)
	// OnTask, when set, is called when a task arrives, before Compute.
	OnTask func(t Task)

	done atomic.Int64
}

// Done returns how many tasks the worker completed.
func (w *Worker) Done() int64 { return w.done.Load() }

// Run subscribes to the worker's task key, posts that it is ready, then
// solves each task the coordinator posts there and posts its result, until
// ctx ends (it returns ctx's error) or the client ends (it returns the
// client's error; a task being computed is then abandoned). Leaving is just closing the client: the ready row goes,
// and the coordinator hands an unfinished task to another worker.
func (w *Worker) Run(ctx context.Context) error {
	c := w.Client
	if c == nil || w.Job == "" {
		return errors.New("tasks: a worker needs a client and a job")
	}
	// A task is abandoned when the client ends: nobody could take its
	// result.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.Done():
			cancel()
		case <-ctx.Done():
		}
	}()

	compute := w.Compute
	if compute == nil {
		compute = func(ctx context.Context, t Task) (uint64, error) { return CountPrimes(ctx, t.Lo, t.Hi) }
	}
	// Subscribe first: a task posted right after the ready row is then in
	// the view's snapshot or a notification, never lost.
	v, err := c.View(ctx, []Key{TaskKey(w.Job, c.Ref())})
	if err != nil {
		return fmt.Errorf("tasks: watch my task key: %w", err)
	}
	defer v.Close(context.WithoutCancel(ctx))
	if err := c.Post(ctx, ReadyKey(w.Job), []byte(w.Name)); err != nil {
		return fmt.Errorf("tasks: post ready: %w", err)
	}
	var last Task
	solved := false
	for {
		t, ok := currentTask(v)
		if ok && (!solved || t.Round != last.Round || t.ID != last.ID) {
			if w.OnTask != nil {
				w.OnTask(t)
			}
			n, err := compute(ctx, t)
			if err != nil {
				select {
				case <-c.Done():
					return c.Err()
				default:
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("tasks: %s: %w", t, err)
			}
			if err := c.Post(ctx, ResultKey(w.Job), result{Round: t.Round, ID: t.ID, Count: n}.encode()); err != nil {
				return fmt.Errorf("tasks: post the result of %s: %w", t, err)
			}
			last, solved = t, true
			w.done.Add(1)
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.Done():
			return c.Err()
		case <-v.Changed():
		}
	}
}

// currentTask returns the task a server posted to the view's key.
func currentTask(v *client.View) (Task, bool) {
	for _, r := range v.Rows() {
		if r.Uploader.ID != 0 {
			continue // only servers post tasks
		}
		if t, err := decodeTask(r.Data); err == nil {
			return t, true
		}
	}
	return Task{}, false
}

// Watch returns a live view of a job's progress; read it with
// ProgressOf.
func Watch(ctx context.Context, c *client.Client, job string) (*client.View, error) {
	v, err := c.View(ctx, []Key{ProgressKey(job)})
	if err != nil {
		return nil, fmt.Errorf("tasks: watch progress: %w", err)
	}
	return v, nil
}

// ProgressOf returns the progress a coordinator posted in v, a view from
// Watch.
func ProgressOf(v *client.View) (Progress, bool) {
	for _, r := range v.Rows() {
		if r.Uploader.ID != 0 {
			continue
		}
		if p, err := decodeProgress(r.Data); err == nil {
			return p, true
		}
	}
	return Progress{}, false
}
