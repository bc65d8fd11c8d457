package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cloudrift/cloudrift/config"
)

// Option customises the command line of a binary: extra commands
// (WithCommand) and dev-mode hooks (WithDevHook). A binary's main passes its
// options to Main; tests pass them to Run.
type Option func(*options)

// options is what the Options of one Main or Run call add.
type options struct {
	commands []Command
	devHooks []DevHook
}

// WithCommand adds a command to the command line. Its name must differ from
// every built-in command, "help", and every other added command; Main and
// Run refuse to start otherwise (exit code 1).
func WithCommand(c Command) Option {
	return func(o *options) { o.commands = append(o.commands, c) }
}

// WithDevHook adds a hook that "dev" runs beside the system it starts; see
// DevHook. Hooks run in the order given.
func WithDevHook(h DevHook) Option {
	return func(o *options) { o.devHooks = append(o.devHooks, h) }
}

// Command is a command a binary adds with WithCommand.
type Command struct {
	// Name is what the user types, a single word. Required.
	Name string
	// Summary is the command's line in the list of commands.
	Summary string
	// Flags, when set, returns the command's flag set, whose Usage "help
	// NAME" prints. Nil: help prints the summary.
	Flags func(prog string) *flag.FlagSet
	// Run runs the command and returns the process's exit code: 0 for
	// success, 1 for a failure, 2 for bad usage. Commands that serve or
	// run for long return when ctx ends (the first interrupt). Required.
	Run func(ctx context.Context, inv Invocation) int
}

// Invocation is what a Command's Run gets.
type Invocation struct {
	// Prog is the program's name, for messages and usage.
	Prog string
	// Args are the arguments after the command's name.
	Args []string
	// Stdout gets results, Stderr logs and errors. Stderr is safe for
	// concurrent use; Stdout is not. Neither may be used after Run returns.
	Stdout, Stderr io.Writer
}

// DevHook runs beside the system that "dev" starts, on its own goroutine,
// once every server is up and every link is up (it never runs when dev
// stops before that). ctx ends when dev begins to stop (the first
// interrupt); dev waits for the hook to return, at most ShutdownTimeout,
// before it stops the servers. A hook typically starts simulated game
// clients (bots) against info.ClientServers and reports their progress with
// info.Report.
type DevHook func(ctx context.Context, info DevInfo)

// DevInfo describes the running system to a DevHook.
type DevInfo struct {
	// Config is the validated system file. The hook must not modify it.
	Config *config.System
	// ClientServers are the servers of every external group, in start
	// order, with the WebSocket endpoints where game clients reach them.
	ClientServers []ClientServer
	// Bots is dev's -bots flag: how many simulated players the hook should
	// run. 0 means none.
	Bots int
	// Interval is dev's -interval flag: how often dev prints its figures,
	// and so how often a report is worth making.
	Interval time.Duration
	// Logger is dev's logger.
	Logger *zerolog.Logger

	status *devStatus
	index  int
}

// Report sets the hook's status line, which dev prints under each table of
// figures until the next report; an empty line prints nothing. It is safe
// for concurrent use.
func (d DevInfo) Report(line string) {
	if d.status == nil {
		return
	}
	d.status.set(d.index, strings.TrimSpace(line))
}

// ClientServer is a server of an external group that dev runs.
type ClientServer struct {
	ID    string // the server's ID
	Group string // its group
	URL   string // its WebSocket endpoint, ws://127.0.0.1:port/path
}

// devStatus holds the last line each dev hook reported.
type devStatus struct {
	mu    sync.Mutex
	lines []string
}

func (s *devStatus) set(i int, line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines[i] = line
}

func (s *devStatus) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.lines {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// buildOptions applies opts and checks the added commands against the
// built-in ones.
func buildOptions(opts []Option) (options, error) {
	var o options
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	taken := map[string]bool{"help": true}
	for _, c := range commands() {
		taken[c.name] = true
	}
	for _, c := range o.commands {
		switch {
		case c.Name == "" || strings.ContainsAny(c.Name, " \t\n") || strings.HasPrefix(c.Name, "-"):
			return o, fmt.Errorf("WithCommand: bad command name %q", c.Name)
		case taken[c.Name]:
			return o, fmt.Errorf("WithCommand: command %q defined twice", c.Name)
		case c.Run == nil:
			return o, fmt.Errorf("WithCommand: command %q has no Run", c.Name)
		}
		taken[c.Name] = true
	}
	for i, h := range o.devHooks {
		if h == nil {
			return o, fmt.Errorf("WithDevHook: hook %d is nil", i+1)
		}
	}
	return o, nil
}

// allCommands returns the built-in commands followed by the added ones.
func (e *env) allCommands() []command {
	all := commands()
	for _, c := range e.opts.commands {
		all = append(all, c.command())
	}
	return all
}

// command adapts an added command to the built-in form.
func (c Command) command() command {
	flags := c.Flags
	if flags == nil {
		flags = func(prog string) *flag.FlagSet {
			return newFlagSet(prog, c.Name, "", c.Summary)
		}
	}
	return command{
		name:    c.Name,
		summary: c.Summary,
		flags:   flags,
		run: func(e *env, args []string) int {
			return c.Run(e.ctx, Invocation{Prog: e.prog, Args: args, Stdout: e.stdout, Stderr: e.stderr})
		},
	}
}
