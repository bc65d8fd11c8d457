package web

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/cloudrift/cloudrift/cli"
	"github.com/cloudrift/cloudrift/config"
)

// DefaultAddr is where the page is served unless told otherwise; the dev
// hook takes a free port when it is busy.
const DefaultAddr = "127.0.0.1:8080"

// Options returns the options that add the page to a binary's command
// line: the "web" command (Command) and the dev hook (DevHook).
func Options() []cli.Option {
	return []cli.Option{cli.WithCommand(Command()), cli.WithDevHook(DevHook)}
}

// DevHook serves the page beside the system dev runs, on DefaultAddr or
// a free loopback port, and reports its URL under dev's tables until ctx
// ends. The page plays on the client servers that run the gateway plugin.
func DevHook(ctx context.Context, info cli.DevInfo) {
	var urls []string
	for _, cs := range info.ClientServers {
		g, ok := info.Config.Group(cs.Group)
		if ok && slices.ContainsFunc(g.Plugins, func(p config.Plugin) bool { return p.Name == gatewayPlugin }) {
			urls = append(urls, cs.URL)
		}
	}
	if len(urls) == 0 {
		info.Report("web: none (no external group runs the " + gatewayPlugin + " plugin)")
		return
	}
	cfg, err := ConfigOf(info.Config, urls)
	if err != nil {
		info.Report("web: " + err.Error())
		return
	}
	ln, err := net.Listen("tcp", DefaultAddr)
	if err != nil {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		info.Report("web: " + err.Error())
		return
	}
	info.Report(fmt.Sprintf("web: play in a browser at http://%s/", ln.Addr()))
	if err := serve(ctx, ln, Handler(cfg)); err != nil {
		info.Report("web: " + err.Error())
	}
}

// serve serves h on ln until ctx ends, then shuts down.
func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type commandOptions struct {
	addr      string
	urls      cli.List
	config    string
	directory string
	app       string
}

func (o *commandOptions) flagSet(prog string) *flag.FlagSet {
	fs := flag.NewFlagSet(prog+" web", flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s web -url ws://HOST:PORT/ [-url ...] [-addr %s] [-config cluster.yaml] [-directory ws://HOST:PORT/]\n\n", prog, DefaultAddr)
		fmt.Fprint(w, `Web serves the open world's browser client for a running system: open the
address in a browser to play. Each tab joins one of the client servers
(-url) as a player; arrow keys, WASD or a click move it, and the chat box
talks to every player. With -config the map shows which world server owns
each region (as the gateways choose while every world server of the file is
up). With -directory, the URL of a client server of the server-directory
example, a panel lists that directory's game servers live.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.addr, "addr", DefaultAddr, "the `address` to serve the page on")
	fs.Var(&o.urls, "url", "a client server's WebSocket `URL`; repeat it, or separate URLs with commas, for several")
	fs.StringVar(&o.config, "config", "", "the system `file`, to show region owners (optional)")
	fs.StringVar(&o.directory, "directory", "", "a server-directory client server's WebSocket `URL` (optional)")
	fs.StringVar(&o.app, "app", DefaultDirectoryApp, "the directory's application `key`")
	return fs
}

// Command returns the "web" command.
func Command() cli.Command {
	return cli.Command{
		Name:    "web",
		Summary: "serve the open world's browser client for a running system",
		Flags:   func(prog string) *flag.FlagSet { return new(commandOptions).flagSet(prog) },
		Run:     runCommand,
	}
}

func runCommand(ctx context.Context, inv cli.Invocation) int {
	var o commandOptions
	fs := o.flagSet(inv.Prog)
	fs.SetOutput(inv.Stderr)
	if err := fs.Parse(inv.Args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || len(o.urls) == 0 {
		fmt.Fprintf(inv.Stderr, "%s web: -url is required and takes no arguments\n", inv.Prog)
		fs.Usage()
		return 2
	}
	cfg := Config{URLs: o.urls}
	if o.config != "" {
		sys, err := config.Load(o.config)
		if err == nil {
			cfg, err = ConfigOf(sys, o.urls)
		}
		if err != nil {
			fmt.Fprintf(inv.Stderr, "%s web: %v\n", inv.Prog, err)
			return 1
		}
	}
	cfg.Directory, cfg.DirectoryApp = o.directory, o.app
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		fmt.Fprintf(inv.Stderr, "%s web: %v\n", inv.Prog, err)
		return 1
	}
	fmt.Fprintf(inv.Stdout, "play in a browser at http://%s/\n", ln.Addr())
	if err := serve(ctx, ln, Handler(cfg)); err != nil {
		fmt.Fprintf(inv.Stderr, "%s web: %v\n", inv.Prog, err)
		return 1
	}
	return 0
}
