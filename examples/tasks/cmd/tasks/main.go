// Command tasks is the distributed-tasks example's binary: cloudrift's
// command line (dev, validate, run, status) with the tasks plugins and the
// cloud memory compiled in, a dev-mode hook that runs simulated workers (one
// crashing now and then) and an observer of the job's progress, and a
// command of its own:
//
//	go run ./examples/tasks/cmd/tasks dev -config examples/tasks/cluster.yaml
//	tasks work -url ws://127.0.0.1:PORT/ [-job primes]
//
// "work" runs one worker until interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cloudrift/cloudrift/cli"
	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/examples/internal/demo"
	"github.com/cloudrift/cloudrift/examples/tasks"
)

func main() {
	cli.Main(options()...)
}

// options are the binary's: a dev hook that runs dev's -bots workers on
// the client servers that run the tasks guard, each task taking at least
// 200ms, and crashes one every 10s; and work.
func options() []cli.Option {
	var guard tasks.Guard
	return demo.Options(demo.Hook{Example: "tasks", Guard: tasks.GuardPlugin, Settings: &guard, Bots: "workers",
		New: func(urls []string, n int) demo.Simulation {
			return &tasks.Simulation{URLs: urls, Job: guard.Job, Workers: n, Think: 200 * time.Millisecond, CrashEvery: 10 * time.Second}
		}},
		cli.Command{Name: "work", Summary: "run a worker of a job until interrupted", Run: work})
}

func work(ctx context.Context, inv cli.Invocation) int {
	fs := demo.NewFlags(inv, "work")
	job := fs.String("job", "primes", "the coordinator's `job`")
	if code, ok := fs.Parse(inv.Args); !ok {
		return code
	}
	c, err := fs.Dial(ctx, client.Options{})
	if err != nil {
		return fs.Fail(err)
	}
	defer c.Close()
	w := &tasks.Worker{Client: c, Job: *job, Name: "cli",
		OnTask: func(t tasks.Task) { fmt.Fprintf(inv.Stdout, "%s  %s\n", time.Now().Format("15:04:05.000"), t) }}
	fmt.Fprintf(inv.Stdout, "working on %q as %s until interrupted\n", *job, c.Ref())
	err = w.Run(ctx)
	fmt.Fprintf(inv.Stdout, "%d tasks done\n", w.Done())
	if err != nil && !errors.Is(err, context.Canceled) {
		return fs.Fail(err)
	}
	return 0
}
