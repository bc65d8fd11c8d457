package bots

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"time"

	"github.com/cloudrift/cloudrift/cli"
	"github.com/cloudrift/cloudrift/config"
)

// GatewayPlugin is the plugin whose groups the dev-mode bots play on.
const GatewayPlugin = "gateway"

// Options returns the options that add the bots to a binary's command line:
// the "bots" command (Command) and the dev-mode bots (DevHook). A binary's
// main passes them on:
//
//	cli.Main(bots.Options()...)
func Options() []cli.Option {
	return []cli.Option{cli.WithCommand(Command()), cli.WithDevHook(DevHook)}
}

type commandOptions struct {
	urls      cli.List
	directory string
	n         int
	duration  time.Duration
	interval  time.Duration
	moveEvery time.Duration
	chatEvery time.Duration
	area      int
}

func (o *commandOptions) flagSet(prog string) *flag.FlagSet {
	fs := flag.NewFlagSet(prog+" bots", flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s bots {-url ws://HOST:PORT/ [-url ...] | -directory http://HOST:PORT/servers} [-n 10] [-duration 30s]\n\n", prog)
		fmt.Fprint(w, `Bots runs simulated players of the open-world example against a running
system: each joins one of the client servers (in turn, or, with
-directory, a lightly loaded one of the group's directory), walks at random
around the centre of the map, where the others are, and chats now and then.
A player whose server drains moves to another (its Move) before leaving.
Every interval it prints the players connected, the messages sent and
received per second, and the round trips of the moves (a move is stamped;
the world server that owns the player's region echoes the stamp back). A
player whose connection ends joins again. After -duration, or at the first
interrupt, the players leave and a summary of the whole run is printed.

Bots exits 0 when at least one player joined, 1 otherwise.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.Var(&o.urls, "url", "a client server's WebSocket `URL`; repeat it, or separate URLs with commas, for several")
	fs.StringVar(&o.directory, "directory", "", "a client group's directory `URL`, http://HOST:PORT/servers, read at every join (before -url)")
	fs.IntVar(&o.n, "n", DefaultPlayers, "how many players")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long to play; 0: until interrupted")
	fs.DurationVar(&o.interval, "interval", time.Second, "how often to print progress")
	fs.DurationVar(&o.moveEvery, "move-every", DefaultMoveEvery, "how often each player moves")
	fs.DurationVar(&o.chatEvery, "chat-every", DefaultChatEvery, "how often each player chats; negative: never")
	fs.IntVar(&o.area, "area", DefaultArea, "side of the square around the map's centre where players walk")
	return fs
}

// Command returns the "bots" command.
func Command() cli.Command {
	return cli.Command{
		Name:    "bots",
		Summary: "run simulated open-world players against a running system",
		Flags:   func(prog string) *flag.FlagSet { return new(commandOptions).flagSet(prog) },
		Run:     runCommand,
	}
}

func runCommand(ctx context.Context, inv cli.Invocation) int {
	var o commandOptions
	fs := o.flagSet(inv.Prog)
	fs.SetOutput(inv.Stderr)
	usage := func(format string, args ...any) int {
		fmt.Fprintf(inv.Stderr, "%s bots: %s\n", inv.Prog, fmt.Sprintf(format, args...))
		fs.Usage()
		return 2
	}
	if err := fs.Parse(inv.Args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return usage("unexpected argument %q", fs.Arg(0))
	case len(o.urls) == 0 && o.directory == "":
		return usage("-url or -directory is required")
	case o.n < 1:
		return usage("-n %d: want at least 1", o.n)
	case o.duration < 0:
		return usage("-duration %s: want 0 or more", o.duration)
	case o.interval <= 0:
		return usage("-interval %s: want a positive duration", o.interval)
	case o.chatEvery == 0:
		return usage("-chat-every 0: want a positive duration, or negative for never")
	}
	s := &Swarm{URLs: o.urls, Directory: o.directory, Players: o.n, MoveEvery: o.moveEvery, ChatEvery: o.chatEvery, Area: int32(o.area)}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	how := "until interrupted"
	if o.duration > 0 {
		how = "for " + o.duration.String()
	}
	if o.directory != "" {
		fmt.Fprintf(inv.Stdout, "%d players on the servers of %s, %s\n", o.n, o.directory, how)
	} else {
		fmt.Fprintf(inv.Stdout, "%d players on %d client servers, %s\n", o.n, len(o.urls), how)
	}
	final, err := s.Run(ctx, o.interval, func(p Progress) {
		fmt.Fprintf(inv.Stdout, "%s  %s\n", time.Now().Format("15:04:05"), p)
	})
	if err != nil {
		return usage("%v", err)
	}
	fmt.Fprintf(inv.Stdout, "done after %s: %d joins (%d failed), %d drops, %d moves, %d sent, %d received (%d chat lines)\n",
		final.Elapsed.Round(time.Millisecond), final.Joins, final.JoinErrors, final.Drops, final.Moves, final.Sent, final.Received, final.Chats)
	if final.RTT.Samples > 0 {
		fmt.Fprintf(inv.Stdout, "round trips: %d, p50 %s p90 %s p99 %s max %s\n",
			final.RTT.Samples, ms(final.RTT.P50), ms(final.RTT.P90), ms(final.RTT.P99), ms(final.RTT.Max))
	}
	if final.Joins == 0 {
		fmt.Fprintf(inv.Stderr, "%s bots: no player could join\n", inv.Prog)
		return 1
	}
	return 0
}

// DevHook runs info.Bots players in dev mode, spread over the servers of
// the external groups that run the gateway plugin (all of them when
// info.Config is nil), and reports their progress under each of dev's
// tables until ctx ends.
func DevHook(ctx context.Context, info cli.DevInfo) {
	if info.Bots == 0 {
		return
	}
	var urls []string
	for _, cs := range info.ClientServers {
		if info.Config == nil {
			urls = append(urls, cs.URL)
			continue
		}
		g, ok := info.Config.Group(cs.Group)
		if ok && slices.ContainsFunc(g.Plugins, func(p config.Plugin) bool { return p.Name == GatewayPlugin }) {
			urls = append(urls, cs.URL)
		}
	}
	if len(urls) == 0 {
		info.Report(fmt.Sprintf("bots: none (no external group runs the %s plugin)", GatewayPlugin))
		return
	}
	info.Report(fmt.Sprintf("bots: %d players joining %d client servers", info.Bots, len(urls)))
	s := &Swarm{URLs: urls, Players: info.Bots}
	if _, err := s.Run(ctx, info.Interval, func(p Progress) { info.Report("bots: " + p.String()) }); err != nil {
		info.Report("bots: " + err.Error())
	}
}
