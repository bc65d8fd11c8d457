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
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/cloudrift/cloudrift/cli"
	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/examples/directory"
	"github.com/cloudrift/cloudrift/examples/internal/demo"
)

// Defaults of the commands: those of cluster.yaml.
const (
	defaultApp   = "directory-demo-7f3a"
	defaultToken = "dev-host-token"
)

func main() {
	cli.Main(options()...)
}

// options are the binary's: a dev hook that runs dev's -bots simulated
// game servers (one of them crashing now and then) and a browser watching
// the list, on the client servers that run the directory guard; host and
// browse.
func options() []cli.Option {
	var guard directory.Guard
	return demo.Options(demo.Hook{Example: "directory", Guard: directory.GuardPlugin, Settings: &guard, Bots: "game servers",
		New: func(urls []string, n int) demo.Simulation {
			return &directory.Simulation{URLs: urls, App: guard.App, HostToken: guard.HostToken, Servers: n, CrashEvery: 10 * time.Second}
		}},
		cli.Command{Name: "host", Summary: "list a game server in the directory until interrupted", Run: host},
		cli.Command{Name: "browse", Summary: "print the directory's game servers", Run: browse})
}

// flags are those of host and browse: -url, -app and the command's own.
type flags struct {
	*demo.Flags
	app string
}

func newFlags(inv cli.Invocation, name string) *flags {
	f := &flags{Flags: demo.NewFlags(inv, name)}
	f.StringVar(&f.app, "app", defaultApp, "the application `key`")
	return f
}

func host(ctx context.Context, inv cli.Invocation) int {
	var l directory.Listing
	fs := newFlags(inv, "host")
	token := fs.String("token", defaultToken, "the host `token` the directory guard expects")
	fs.StringVar(&l.Name, "name", "my-server", "the server's `name`")
	fs.StringVar(&l.Level, "level", "dust", "the `level` being played")
	fs.IntVar(&l.Players, "players", 0, "players connected")
	fs.IntVar(&l.MaxPlayers, "max", 16, "capacity")
	fs.IntVar(&l.GamePort, "port", 27015, "the game's `port`")
	if code, ok := fs.Parse(inv.Args); !ok {
		return code
	}
	var opts client.Options
	if *token != "" {
		opts.Header = http.Header{directory.TokenHeader: []string{*token}}
	}
	cl, err := fs.Dial(ctx, opts)
	if err != nil {
		return fs.Fail(err)
	}
	defer cl.Close()
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = directory.Announce(octx, cl, fs.app, l)
	cancel()
	if err != nil {
		return fs.Fail(err)
	}
	fmt.Fprintf(inv.Stdout, "listed %q as %s until interrupted\n", l.Name, cl.Ref())
	select {
	case <-ctx.Done():
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := directory.Delist(dctx, cl, fs.app); err != nil {
			return fs.Fail(err)
		}
		fmt.Fprintln(inv.Stdout, "delisted")
		return 0
	case <-cl.Done():
		return fs.Fail(fmt.Errorf("disconnected: %w", cl.Err()))
	}
}

func browse(ctx context.Context, inv cli.Invocation) int {
	var level string
	var notFull, watch bool
	fs := newFlags(inv, "browse")
	fs.StringVar(&level, "level", "", "only servers playing this `level`")
	fs.BoolVar(&notFull, "not-full", false, "only servers with room")
	fs.BoolVar(&watch, "watch", false, "print the list again at every change, until interrupted")
	if code, ok := fs.Parse(inv.Args); !ok {
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
	cl, err := fs.Dial(ctx, client.Options{})
	if err != nil {
		return fs.Fail(err)
	}
	defer cl.Close()
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !watch {
		ss, err := directory.List(octx, cl, fs.app, filter)
		printList(inv.Stdout, ss)
		if err != nil {
			return fs.Fail(err)
		}
		return 0
	}
	b, err := directory.Watch(octx, cl, fs.app)
	if err != nil {
		return fs.Fail(err)
	}
	return fs.Follow(ctx, cl, b.Changed(), func() { printList(inv.Stdout, b.Servers(filter)) })
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
