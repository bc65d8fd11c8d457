// Package cli is cloudrift's command line: the entry point of every cloudrift
// binary, the stock cmd/cloudrift as well as a studio's own build.
//
// A studio compiles its plugins into its own binary with a main that imports
// its plugin packages for their side effect (each registers its plugins by
// name in init) and calls Main:
//
//	package main
//
//	import (
//		"github.com/cloudrift/cloudrift/cli"
//		_ "example.com/mygame/plugins"
//	)
//
//	func main() { cli.Main() }
//
// Options add the binary's own commands and dev-mode hooks, with no global
// state: cli.Main(cli.WithCommand(cmd), cli.WithDevHook(hook)). The stock
// binary adds the open-world example's "bots" command and dev-mode bots
// this way (see examples/openworld/bots).
//
// The commands are:
//
//	dev       every group of the system file in this one process, on loopback
//	validate  check a system file and print who dials whom
//	run       one server of one group: a replica of a real deployment
//	status    each group's servers and their health in the registry (consul)
//	dashboard a live web page of a running system, from its operations ports
//	help      usage, or a command's flags
//
// Exit codes: 0 success, 1 a failure (a bad system file, a server that could
// not start, a shutdown that missed its deadline), 2 bad usage.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/config"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// DefaultConfig is the system file the commands read when -config is not
// given.
const DefaultConfig = "cluster.yaml"

// ShutdownTimeout bounds a graceful shutdown of dev and run; past it, the
// servers still running are closed at once.
const ShutdownTimeout = 10 * time.Second

// Main runs the command named by os.Args and exits the process with its exit
// code. The first SIGINT or SIGTERM stops dev and run gracefully; a second one
// closes every server at once. opts add commands and dev-mode hooks (see
// WithCommand and WithDevHook).
func Main(opts ...Option) {
	os.Exit(mainWithSignals(opts))
}

func mainWithSignals(opts []Option) int {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	force := make(chan struct{})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-sigs:
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			close(force)
		case <-done:
		}
	}()
	prog := filepath.Base(os.Args[0])
	code := run(ctx, force, prog, os.Args[1:], os.Stdout, os.Stderr, opts...)
	close(done)
	wg.Wait()
	return code
}

// Run runs the command named by args[0] (args excludes the program name)
// and returns its exit code. Results go to stdout; logs, warnings and errors
// to stderr. Both writers are used only until Run returns and need not be
// safe for concurrent use.
//
// dev and run serve until ctx is done, then shut their servers down
// gracefully within ShutdownTimeout. opts are those of Main.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, opts ...Option) int {
	return run(ctx, nil, "cloudrift", args, stdout, stderr, opts...)
}

// env is what every command gets.
type env struct {
	ctx    context.Context
	force  <-chan struct{} // closed to turn a graceful shutdown into a hard close; nil: never
	prog   string
	stdout io.Writer
	stderr io.Writer // safe for concurrent use (logs are written from many goroutines)
	isTerm bool      // stderr is a terminal: colour logs
	json   bool      // JSON log mode: every stderr line is a JSON object (jsonlog.go)
	opts   options   // what the binary's Options added
}

type command struct {
	name    string
	summary string
	// flags returns the command's flag set, bound to throwaway options:
	// help prints its usage.
	flags func(prog string) *flag.FlagSet
	run   func(e *env, args []string) int
}

func commands() []command {
	return []command{
		systemCommand("dev", "run every group of the system file in this process, on loopback", runDev),
		systemCommand("validate", "check a system file and print who dials whom", runValidate),
		systemCommand("run", "run one server of a group (a replica of a real deployment)", runRun),
		systemCommand("status", "list each group's servers and their health in the registry", runStatus),
		systemCommand("dashboard", "serve a live web page of a running system", runDashboard),
	}
}

// systemCommand is a built-in command that reads a system file: its
// options O are parsed, checked and the file loaded (env.setup) before run
// is called with them.
func systemCommand[O any, P interface {
	*O
	commandOptions
}](name, summary string, run func(e *env, o P, sys *config.System) int) command {
	return command{
		name:    name,
		summary: summary,
		flags:   func(prog string) *flag.FlagSet { return P(new(O)).flagSet(prog) },
		run: func(e *env, args []string) int {
			if j, ok := any(P(new(O))).(jsonOption); ok && wantsJSON(j, e.prog, args) {
				defer e.useJSON(e.stderr)()
			}
			o := P(new(O))
			sys, code, ok := e.setup(o, args)
			if !ok {
				return code
			}
			return run(e, o, sys)
		},
	}
}

func run(ctx context.Context, force <-chan struct{}, prog string, args []string, stdout, stderr io.Writer, opts ...Option) int {
	e := &env{ctx: ctx, force: force, prog: prog, stdout: stdout, stderr: &lockedWriter{w: stderr}, isTerm: isTerminal(stderr)}
	var err error
	if e.opts, err = buildOptions(opts); err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", prog, err)
		return exitFail
	}
	if len(args) == 0 {
		e.usage(stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		return e.help(rest)
	}
	for _, c := range e.allCommands() {
		if c.name == name {
			return c.run(e, rest)
		}
	}
	fmt.Fprintf(e.stderr, "%s: unknown command %q\n\n", prog, name)
	e.usage(e.stderr)
	return exitUsage
}

func (e *env) usage(w io.Writer) {
	fmt.Fprintf(w, "%s runs a game's servers as one clustered system.\n\n", e.prog)
	fmt.Fprintf(w, "Usage:\n  %s <command> [flags]\n\nCommands:\n", e.prog)
	for _, c := range e.allCommands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-9s %s\n", "help", "show this text, or a command's flags")
	fmt.Fprintf(w, "\nRun \"%s help <command>\" for a command's flags.\n", e.prog)
}

func (e *env) help(args []string) int {
	if len(args) == 0 {
		e.usage(e.stdout)
		return exitOK
	}
	for _, c := range e.allCommands() {
		if c.name == args[0] {
			fs := c.flags(e.prog)
			fs.SetOutput(e.stdout)
			fs.Usage()
			return exitOK
		}
	}
	fmt.Fprintf(e.stderr, "%s help: unknown command %q\n\n", e.prog, args[0])
	e.usage(e.stderr)
	return exitUsage
}

// newFlagSet returns a flag set whose usage text starts with the command
// line and a description.
func newFlagSet(prog, name, synopsis, desc string) *flag.FlagSet {
	fs := flag.NewFlagSet(prog+" "+name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s %s %s\n\n%s\n\nFlags:\n", prog, name, synopsis, strings.TrimSpace(desc))
		fs.PrintDefaults()
	}
	return fs
}

// parse parses a command's flags. When it returns false, the command ends
// with code: usage was printed, for -h or for a mistake.
func (e *env) parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	fs.SetOutput(e.stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false // the flag package printed the problem and the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage, false
	}
	return exitOK, true
}

// commandOptions are the flags of a command that reads a system file:
// they define their flag set, check their values once parsed (a failed
// check is a usage error) and name the file.
type commandOptions interface {
	flagSet(prog string) *flag.FlagSet
	check() error
	file() string
}

// configFlag is the -config flag every command has; commandOptions embed
// it.
type configFlag struct{ config string }

func (c *configFlag) defineConfig(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", envDefault("CLOUDRIFT_CONFIG", DefaultConfig), "the system `file` (env CLOUDRIFT_CONFIG)")
}

func (c *configFlag) file() string { return c.config }

// setup parses args into o, checks them and loads the system file they
// name. When ok is false the command ends with code: usage or the file's
// problems were printed.
func (e *env) setup(o commandOptions, args []string) (sys *config.System, code int, ok bool) {
	fs := o.flagSet(e.prog)
	if code, ok := e.parse(fs, args); !ok {
		return nil, code, false
	}
	if err := o.check(); err != nil {
		return nil, e.usageError(fs, "%v", err), false
	}
	if sys, ok = e.load(o.file()); !ok {
		return nil, exitFail, false
	}
	return sys, exitOK, true
}

// usageError prints a problem with the flags and the usage.
func (e *env) usageError(fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return exitUsage
}

// envDefault returns the environment variable's value, or def when it is
// unset or empty.
func envDefault(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// load reads and validates the system file, printing every problem to
// stderr, one per line.
func (e *env) load(path string) (*config.System, bool) {
	sys, err := config.Load(path)
	if err == nil {
		return sys, true
	}
	if !errors.Is(err, config.ErrInvalid) {
		fmt.Fprintf(e.stderr, "%s: %v\n", e.prog, err)
		return nil, false
	}
	e.problems(path, splitErrors(err))
	return nil, false
}

// problems prints each line and a count.
func (e *env) problems(file string, lines []string) {
	for _, l := range lines {
		fmt.Fprintln(e.stderr, l)
	}
	fmt.Fprintf(e.stderr, "%s: %s: %s\n", e.prog, file, plural(len(lines), "problem", "problems"))
}

// splitErrors returns one line per problem: errors.Join puts each joined
// error on its own line.
func splitErrors(err error) []string {
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// logLevels lists the accepted -log-level values.
const logLevels = "trace, debug, info, warn, error or disabled"

func parseLevel(s string) (zerolog.Level, error) {
	switch s {
	case "trace", "debug", "info", "warn", "error", "disabled":
		return zerolog.ParseLevel(s)
	}
	return zerolog.NoLevel, fmt.Errorf("-log-level %q: want %s", s, logLevels)
}

// logger writes human-readable logs to stderr at level lvl; JSON lines in
// JSON log mode.
func (e *env) logger(lvl zerolog.Level) zerolog.Logger {
	if e.json {
		return e.jsonLogger(lvl)
	}
	cw := zerolog.ConsoleWriter{Out: e.stderr, NoColor: !e.isTerm, TimeFormat: "15:04:05"}
	return zerolog.New(cw).Level(lvl).With().Timestamp().Logger()
}

// lockedWriter serialises writes: servers log from many goroutines while
// the command prints.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
