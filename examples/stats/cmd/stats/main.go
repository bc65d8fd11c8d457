// Command stats is the in-game statistics example's binary: cloudrift's
// command line (dev, validate, run, status) with the statistics plugins
// and the cloud memory compiled in, a dev-mode hook that runs simulated
// players and a watcher of the running total, and a command of its own:
//
//	go run ./examples/stats/cmd/stats dev -config examples/stats/cluster.yaml
//	stats watch -url ws://127.0.0.1:PORT/
//
// "watch" prints the running total at every change until interrupted.
package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudrift/cloudrift/cli"
	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/examples/internal/demo"
	"github.com/cloudrift/cloudrift/examples/stats"
)

func main() {
	cli.Main(options()...)
}

// options are the binary's: a dev hook that runs 5 simulated players per
// dev -bots on the client servers that run the stats guard, and watch.
func options() []cli.Option {
	return demo.Options(demo.Hook{Example: "stats", Guard: stats.GuardPlugin, Bots: "players", PerBot: 5,
		New: func(urls []string, n int) demo.Simulation {
			return &stats.Simulation{URLs: urls, Players: n}
		}},
		cli.Command{Name: "watch", Summary: "print the running total of kills at every change", Run: watch})
}

func watch(ctx context.Context, inv cli.Invocation) int {
	fs := demo.NewFlags(inv, "watch")
	if code, ok := fs.Parse(inv.Args); !ok {
		return code
	}
	dctx, cancel := context.WithTimeout(ctx, demo.DialTimeout)
	defer cancel()
	c, err := fs.Dial(dctx, client.Options{})
	if err != nil {
		return fs.Fail(err)
	}
	defer c.Close()
	tot, err := stats.WatchTotal(dctx, c)
	if err != nil {
		return fs.Fail(err)
	}
	return fs.Follow(ctx, c, tot.Changed(), func() {
		if n, ok := tot.Kills(); ok {
			fmt.Fprintf(inv.Stdout, "%s  total kills %d\n", time.Now().Format("15:04:05.000"), n)
		} else {
			fmt.Fprintf(inv.Stdout, "%s  no total posted (is the stats server up?)\n", time.Now().Format("15:04:05.000"))
		}
	})
}
