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
	"flag"
	"fmt"
	"slices"
	"time"

	"github.com/cloudrift/cloudrift/cli"
	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/examples/tasks"
	"github.com/cloudrift/cloudrift/plugins"

	// The cloud memory (the "cloudmemory" plugin and the client every
	// server of a group that connects to it gets).
	_ "github.com/cloudrift/cloudrift/plugins/cloudmemory"
)

func main() {
	cli.Main(options()...)
}

func options() []cli.Option {
	return []cli.Option{
		cli.WithDevHook(devHook),
		cli.WithCommand(cli.Command{Name: "work", Summary: "run a worker of a job until interrupted", Run: work}),
	}
}

// devHook runs info.Bots workers on the client servers that run the tasks
// guard, each task taking at least 200ms, and crashes one every 10s.
func devHook(ctx context.Context, info cli.DevInfo) {
	var urls []string
	var guard tasks.Guard
	for _, cs := range info.ClientServers {
		g, ok := info.Config.Group(cs.Group)
		if !ok {
			continue
		}
		i := slices.IndexFunc(g.Plugins, func(p config.Plugin) bool { return p.Name == tasks.GuardPlugin })
		if i < 0 {
			continue
		}
		if err := plugins.DecodeStrict(&g.Plugins[i].Settings, &guard); err != nil {
			info.Report("tasks: " + err.Error())
			return
		}
		urls = append(urls, cs.URL)
	}
	switch {
	case len(urls) == 0:
		info.Report("tasks: no external group runs the " + tasks.GuardPlugin + " plugin")
		return
	case info.Bots == 0:
		info.Report("tasks: -bots 0, no workers")
		return
	}
	sim := &tasks.Simulation{URLs: urls, Job: guard.Job, Workers: info.Bots, Think: 200 * time.Millisecond, CrashEvery: 10 * time.Second}
	info.Report(fmt.Sprintf("tasks: %d workers joining %d client servers", info.Bots, len(urls)))
	if err := sim.Run(ctx, info.Interval, info.Report); err != nil {
		info.Report(err.Error())
	}
}

func work(ctx context.Context, inv cli.Invocation) int {
	fs := flag.NewFlagSet(inv.Prog+" work", flag.ContinueOnError)
	fs.SetOutput(inv.Stderr)
	url := fs.String("url", "", "a client server's WebSocket `URL` (required)")
	job := fs.String("job", "primes", "the coordinator's `job`")
	if err := fs.Parse(inv.Args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *url == "" || fs.NArg() > 0 {
		fmt.Fprintf(inv.Stderr, "%s work: -url is required and takes no arguments\n", inv.Prog)
		fs.Usage()
		return 2
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := client.Dial(dctx, client.Options{URL: *url})
	cancel()
	if err != nil {
		fmt.Fprintf(inv.Stderr, "%s work: %v\n", inv.Prog, err)
		return 1
	}
	defer c.Close()
	w := &tasks.Worker{Client: c, Job: *job, Name: "cli",
		OnTask: func(t tasks.Task) { fmt.Fprintf(inv.Stdout, "%s  %s\n", time.Now().Format("15:04:05.000"), t) }}
	fmt.Fprintf(inv.Stdout, "working on %q as %s until interrupted\n", *job, c.Ref())
	err = w.Run(ctx)
	fmt.Fprintf(inv.Stdout, "%d tasks done\n", w.Done())
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(inv.Stderr, "%s work: %v\n", inv.Prog, err)
		return 1
	}
	return 0
}
