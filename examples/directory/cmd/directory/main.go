// Command directory is the server-directory example's binary: cloudrift's
// command line (dev, validate, run, status) with the directory's plugin and
// the cloud memory compiled in, a dev-mode hook that runs simulated game
// servers and a browser, and two commands of its own:
//
//	go run ./examples/directory/cmd/directory dev -config examples/directory/cluster.yaml
//	directory host -url ws://127.0.0.1:PORT/ -name mine -level dust -port 27015
//	directory browse -url ws://127.0.0.1:PORT/ [-level dust] [-not-full] [-watch]
//
// "host" lists a game server until interrupted; "browse" prints the list
// (and, with -watch, again at every change).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/cloudrift/cloudrift/cli"
	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/examples/directory"
	"github.com/cloudrift/cloudrift/plugins"

	// The cloud memory (the "cloudmemory" plugin and the client every
	// server of a group that connects to it gets).
	_ "github.com/cloudrift/cloudrift/plugins/cloudmemory"
)

// Defaults of the commands: those of cluster.yaml.
const (
	defaultApp   = "directory-demo-7f3a"
	defaultToken = "dev-host-token"
)

func main() {
	cli.Main(options()...)
}

func options() []cli.Option {
	return []cli.Option{
		cli.WithDevHook(devHook),
		cli.WithCommand(cli.Command{Name: "host", Summary: "list a game server in the directory until interrupted", Run: host}),
		cli.WithCommand(cli.Command{Name: "browse", Summary: "print the directory's game servers", Run: browse}),
	}
}

// devHook runs info.Bots simulated game servers (one of them crashing now
// and then) and a browser watching the list, on the client servers that run
// the directory guard.
func devHook(ctx context.Context, info cli.DevInfo) {
	var urls []string
	var guard directory.Guard
	for _, cs := range info.ClientServers {
		g, ok := info.Config.Group(cs.Group)
		if !ok {
			continue
		}
		i := slices.IndexFunc(g.Plugins, func(p config.Plugin) bool { return p.Name == directory.GuardPlugin })
		if i < 0 {
			continue
		}
		if err := plugins.DecodeStrict(&g.Plugins[i].Settings, &guard); err != nil {
			info.Report("directory: " + err.Error())
			return
		}
		urls = append(urls, cs.URL)
	}
	switch {
	case len(urls) == 0:
		info.Report("directory: no external group runs the " + directory.GuardPlugin + " plugin")
		return
	case info.Bots == 0:
		info.Report("directory: -bots 0, no game servers")
		return
	}
	sim := &directory.Simulation{URLs: urls, App: guard.App, HostToken: guard.HostToken, Servers: info.Bots, CrashEvery: 10 * time.Second}
	info.Report(fmt.Sprintf("directory: %d game servers joining %d client servers", info.Bots, len(urls)))
	if err := sim.Run(ctx, info.Interval, info.Report); err != nil {
		info.Report(err.Error())
	}
}

// flags shared by host and browse.
type common struct {
	url, app, token string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "", "a client server's WebSocket `URL` (required)")
	fs.StringVar(&c.app, "app", defaultApp, "the application `key`")
}

func parse(inv cli.Invocation, name string, fs *flag.FlagSet, c *common) (int, bool) {
	fs.SetOutput(inv.Stderr)
	if err := fs.Parse(inv.Args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if c.url == "" || fs.NArg() > 0 {
		fmt.Fprintf(inv.Stderr, "%s %s: -url is required and takes no arguments\n", inv.Prog, name)
		fs.Usage()
		return 2, false
	}
	return 0, true
}

func dial(ctx context.Context, c *common) (*client.Client, error) {
	opts := client.Options{URL: c.url}
	if c.token != "" {
		opts.Header = http.Header{directory.TokenHeader: []string{c.token}}
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return client.Dial(dctx, opts)
}

func host(ctx context.Context, inv cli.Invocation) int {
	var c common
	var l directory.Listing
	fs := flag.NewFlagSet(inv.Prog+" host", flag.ContinueOnError)
	c.register(fs)
	fs.StringVar(&c.token, "token", defaultToken, "the host `token` the directory guard expects")
	fs.StringVar(&l.Name, "name", "my-server", "the server's `name`")
	fs.StringVar(&l.Level, "level", "dust", "the `level` being played")
	fs.IntVar(&l.Players, "players", 0, "players connected")
	fs.IntVar(&l.MaxPlayers, "max", 16, "capacity")
	fs.IntVar(&l.GamePort, "port", 27015, "the game's `port`")
	if code, ok := parse(inv, "host", fs, &c); !ok {
		return code
	}
	cl, err := dial(ctx, &c)
	if err != nil {
		fmt.Fprintf(inv.Stderr, "%s host: %v\n", inv.Prog, err)
		return 1
	}
	defer cl.Close()
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = directory.Announce(octx, cl, c.app, l)
	cancel()
	if err != nil {
		fmt.Fprintf(inv.Stderr, "%s host: %v\n", inv.Prog, err)
		return 1
	}
	fmt.Fprintf(inv.Stdout, "listed %q as %s until interrupted\n", l.Name, cl.Ref())
	select {
	case <-ctx.Done():
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := directory.Delist(dctx, cl, c.app); err != nil {
			fmt.Fprintf(inv.Stderr, "%s host: %v\n", inv.Prog, err)
			return 1
		}
		fmt.Fprintln(inv.Stdout, "delisted")
		return 0
	case <-cl.Done():
		fmt.Fprintf(inv.Stderr, "%s host: disconnected: %v\n", inv.Prog, cl.Err())
		return 1
	}
}

func browse(ctx context.Context, inv cli.Invocation) int {
	var c common
	var level string
	var notFull, watch bool
	fs := flag.NewFlagSet(inv.Prog+" browse", flag.ContinueOnError)
	c.register(fs)
	fs.StringVar(&level, "level", "", "only servers playing this `level`")
	fs.BoolVar(&notFull, "not-full", false, "only servers with room")
	fs.BoolVar(&watch, "watch", false, "print the list again at every change, until interrupted")
	if code, ok := parse(inv, "browse", fs, &c); !ok {
		return code
	}
	var filters []directory.Filter
	if level != "" {
		filters = append(filters, directory.OnLevel(level))
	}
	if notFull {
		filters = append(filters, directory.NotFull())
	}
	filter := directory.All(filters...)
	cl, err := dial(ctx, &c)
	if err != nil {
		fmt.Fprintf(inv.Stderr, "%s browse: %v\n", inv.Prog, err)
		return 1
	}
	defer cl.Close()
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !watch {
		ss, err := directory.List(octx, cl, c.app, filter)
		printList(inv.Stdout, ss)
		if err != nil {
			fmt.Fprintf(inv.Stderr, "%s browse: %v\n", inv.Prog, err)
			return 1
		}
		return 0
	}
	b, err := directory.Watch(octx, cl, c.app)
	if err != nil {
		fmt.Fprintf(inv.Stderr, "%s browse: %v\n", inv.Prog, err)
		return 1
	}
	for {
		printList(inv.Stdout, b.Servers(filter))
		select {
		case <-ctx.Done():
			return 0
		case <-cl.Done():
			fmt.Fprintf(inv.Stderr, "%s browse: disconnected: %v\n", inv.Prog, cl.Err())
			return 1
		case <-b.Changed():
		}
	}
}

func printList(w io.Writer, ss []directory.Server) {
	fmt.Fprintf(w, "%s  %d servers\n", time.Now().Format("15:04:05"), len(ss))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tLEVEL\tPLAYERS\tADDRESS\tREF")
	for _, s := range ss {
		fmt.Fprintf(tw, "  %s\t%s\t%d/%d\t%s\t%s\n", s.Name, s.Level, s.Players, s.MaxPlayers, s.Addr, s.Ref)
	}
	tw.Flush()
}
