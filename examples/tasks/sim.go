package tasks

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/examples/internal/demo"
	"github.com/cloudrift/cloudrift/internal/backoff"
)

// Simulation runs workers against a running tasks system, and an observer
// of the job's progress: what the example's dev mode shows. Its zero value
// needs URLs, Job and Workers.
type Simulation struct {
	// URLs of the client servers; workers are spread over them and the
	// observer uses the first.
	URLs []string
	// Job is the coordinator's job.
	Job string
	// Workers is how many workers to run.
	Workers int
	// Think is added to every task's computation, so that progress can be
	// watched. Zero: none.
	Think time.Duration
	// CrashEvery, when positive, is how often one worker (in turn) drops
	// its connection in the middle of a task (its next one), then comes
	// back after a second.
	CrashEvery time.Duration

	crashes atomic.Int64
}

// Run runs the workers and the observer until ctx ends, calling report
// with a one-line summary every interval.
func (s *Simulation) Run(ctx context.Context, interval time.Duration, report func(string)) error {
	if len(s.URLs) == 0 || s.Workers < 1 || s.Job == "" {
		return fmt.Errorf("tasks: simulation needs URLs, a job and workers")
	}
	return demo.Scenario[*client.View]{
		Example:    "tasks",
		URL:        s.URLs[0],
		Observer:   "observer",
		Watch:      func(ctx context.Context, c *client.Client) (*client.View, error) { return Watch(ctx, c, s.Job) },
		Bots:       s.Workers,
		Bot:        s.worker,
		CrashEvery: s.CrashEvery,
		Summary: func(progress *client.View) string {
			if p, ok := ProgressOf(progress); ok {
				return fmt.Sprintf("tasks: %s | %d worker crashes so far", p, s.crashes.Load())
			}
			return "tasks: no progress posted (is the coordinator up?)"
		},
	}.Play(ctx, interval, report)
}

// worker runs one worker, reconnecting after each crash, until ctx ends.
// A crash asked for happens during the worker's next task.
func (s *Simulation) worker(ctx context.Context, i int, crash <-chan struct{}) {
	demo.Reconnect(ctx, client.Options{URL: s.URLs[i%len(s.URLs)]}, func(c *client.Client) {
		compute := func(ctx context.Context, t Task) (uint64, error) {
			n, err := CountPrimes(ctx, t.Lo, t.Hi)
			if err != nil {
				return 0, err
			}
			var think <-chan time.Time
			if s.Think > 0 {
				timer := time.NewTimer(s.Think)
				defer timer.Stop()
				think = timer.C
			}
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-crash:
				s.crashes.Add(1)
				c.Close()
				return 0, fmt.Errorf("crashed during %s", t)
			case <-think:
				return n, nil
			}
		}
		w := &Worker{Client: c, Job: s.Job, Name: fmt.Sprintf("worker-%d", i+1), Compute: compute}
		_ = w.Run(ctx)
		c.Close()
		backoff.Sleep(ctx, time.Second)
	})
}
