package demo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/cloudrift/cloudrift/cli"
	"github.com/cloudrift/cloudrift/client"
)

// Flags are the flags of an example's own command that talks to a running
// system as a game client of one client server: -url, which is required,
// and whatever the command adds to the embedded FlagSet before Parse.
// Make them with NewFlags.
type Flags struct {
	*flag.FlagSet
	// URL is -url once parsed: a client server's WebSocket URL.
	URL string

	stderr io.Writer
}

// NewFlags returns the flags of the command name of inv's program, with
// -url defined. The set is named "PROG NAME", which begins its messages;
// its errors and usage go to inv.Stderr.
func NewFlags(inv cli.Invocation, name string) *Flags {
	f := &Flags{FlagSet: flag.NewFlagSet(inv.Prog+" "+name, flag.ContinueOnError), stderr: inv.Stderr}
	f.SetOutput(inv.Stderr)
	f.StringVar(&f.URL, "url", "", "a client server's WebSocket `URL` (required)")
	return f
}

// Parse parses args (the Invocation's Args). When ok is false the command
// must return code at once: 0 after -help, 2 after a bad flag, a missing
// -url or an argument (the command takes none), with usage printed.
func (f *Flags) Parse(args []string) (code int, ok bool) {
	if err := f.FlagSet.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if f.URL == "" || f.NArg() > 0 {
		fmt.Fprintf(f.stderr, "%s: -url is required and takes no arguments\n", f.Name())
		f.Usage()
		return 2, false
	}
	return 0, true
}

// Dial connects a game client to -url with opts (whose URL it replaces),
// as Dial does: bounded by DialTimeout and ctx.
func (f *Flags) Dial(ctx context.Context, opts client.Options) (*client.Client, error) {
	opts.URL = f.URL
	return Dial(ctx, opts)
}

// Follow calls show, then again after each value changed receives, until
// ctx ends (it returns 0) or c disconnects (it returns Fail's code): the
// loop of a command that prints a view at every change until interrupted.
func (f *Flags) Follow(ctx context.Context, c *client.Client, changed <-chan struct{}, show func()) int {
	for {
		show()
		select {
		case <-ctx.Done():
			return 0
		case <-c.Done():
			return f.Fail(fmt.Errorf("disconnected: %w", c.Err()))
		case <-changed:
		}
	}
}

// Fail prints err to the invocation's stderr after the command's name
// ("PROG NAME: err") and returns 1, the exit code of a failure.
func (f *Flags) Fail(err error) int {
	fmt.Fprintf(f.stderr, "%s: %v\n", f.Name(), err)
	return 1
}
