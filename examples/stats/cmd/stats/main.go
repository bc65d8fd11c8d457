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
	"errors"
	"flag"
	"fmt"
	"slices"
	"time"

	"github.com/cloudrift/cloudrift/cli"
	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/examples/stats"

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
		cli.WithCommand(cli.Command{Name: "watch", Summary: "print the running total of kills at every change", Run: watch}),
	}
}

// devHook runs 5×info.Bots simulated players on the client servers that
// run the stats guard.
func devHook(ctx context.Context, info cli.DevInfo) {
	var urls []string
	for _, cs := range info.ClientServers {
		g, ok := info.Config.Group(cs.Group)
		if ok && slices.ContainsFunc(g.Plugins, func(p config.Plugin) bool { return p.Name == stats.GuardPlugin }) {
			urls = append(urls, cs.URL)
		}
	}
	switch {
	case len(urls) == 0:
		info.Report("stats: no external group runs the " + stats.GuardPlugin + " plugin")
		return
	case info.Bots == 0:
		info.Report("stats: -bots 0, no players")
		return
	}
	sim := &stats.Simulation{URLs: urls, Players: 5 * info.Bots}
	info.Report(fmt.Sprintf("stats: %d players joining %d client servers", sim.Players, len(urls)))
	if err := sim.Run(ctx, info.Interval, info.Report); err != nil {
		info.Report(err.Error())
	}
}

func watch(ctx context.Context, inv cli.Invocation) int {
	fs := flag.NewFlagSet(inv.Prog+" watch", flag.ContinueOnError)
	fs.SetOutput(inv.Stderr)
	url := fs.String("url", "", "a client server's WebSocket `URL` (required)")
	if err := fs.Parse(inv.Args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *url == "" || fs.NArg() > 0 {
		fmt.Fprintf(inv.Stderr, "%s watch: -url is required and takes no arguments\n", inv.Prog)
		fs.Usage()
		return 2
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := client.Dial(dctx, client.Options{URL: *url})
	if err != nil {
		fmt.Fprintf(inv.Stderr, "%s watch: %v\n", inv.Prog, err)
		return 1
	}
	defer c.Close()
	tot, err := stats.WatchTotal(dctx, c)
	if err != nil {
		fmt.Fprintf(inv.Stderr, "%s watch: %v\n", inv.Prog, err)
		return 1
	}
	for {
		if n, ok := tot.Kills(); ok {
			fmt.Fprintf(inv.Stdout, "%s  total kills %d\n", time.Now().Format("15:04:05.000"), n)
		} else {
			fmt.Fprintf(inv.Stdout, "%s  no total posted (is the stats server up?)\n", time.Now().Format("15:04:05.000"))
		}
		select {
		case <-ctx.Done():
			return 0
		case <-c.Done():
			fmt.Fprintf(inv.Stderr, "%s watch: disconnected: %v\n", inv.Prog, c.Err())
			return 1
		case <-tot.Changed():
		}
	}
}
