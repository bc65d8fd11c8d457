package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/testutil"
)

// echo is an added command that prints its arguments.
func echo() Command {
	return Command{
		Name:    "echo",
		Summary: "print the arguments",
		Flags: func(prog string) *flag.FlagSet {
			fs := newFlagSet(prog, "echo", "[-upper] words...", "Echo prints its arguments.")
			fs.Bool("upper", false, "shout")
			return fs
		},
		Run: func(ctx context.Context, inv Invocation) int {
			fmt.Fprintf(inv.Stdout, "%s: %s\n", inv.Prog, strings.Join(inv.Args, " "))
			return 3
		},
	}
}

func TestWithCommand(t *testing.T) {
	run := func(opts []Option, args ...string) (int, string, string) {
		var out, errOut testutil.Buffer
		code := Run(context.Background(), args, &out, &errOut, opts...)
		return code, out.String(), errOut.String()
	}
	opts := []Option{WithCommand(echo()), WithCommand(Command{Name: "bare", Run: func(context.Context, Invocation) int { return 0 }})}
	if code, out, _ := run(opts, "echo", "a", "b"); code != 3 || out != "cloudrift: a b\n" {
		t.Errorf("echo a b: exit %d, stdout %q", code, out)
	}
	if code, out, _ := run(opts, "help"); code != 0 || !regexp.MustCompile(`(?m)^  echo\s+print the arguments$`).MatchString(out) || !strings.Contains(out, "  dev ") {
		t.Errorf("help: exit %d, stdout:\n%s", code, out)
	}
	if code, out, _ := run(opts, "help", "echo"); code != 0 || !strings.Contains(out, "-upper") {
		t.Errorf("help echo: exit %d, stdout:\n%s", code, out)
	}
	if code, out, _ := run(opts, "help", "bare"); code != 0 || !strings.Contains(out, "Usage: cloudrift bare") {
		t.Errorf("help bare: exit %d, stdout:\n%s", code, out)
	}
	// Without the option, the command does not exist.
	if code, _, errOut := run(nil, "echo"); code != 2 || !strings.Contains(errOut, `unknown command "echo"`) {
		t.Errorf("echo without the option: exit %d, stderr %q", code, errOut)
	}
	for _, c := range []struct {
		opts []Option
		want string
	}{
		{[]Option{WithCommand(echo()), WithCommand(echo())}, `"echo" defined twice`},
		{[]Option{WithCommand(Command{Name: "dev", Run: echo().Run})}, `"dev" defined twice`},
		{[]Option{WithCommand(Command{Name: "help", Run: echo().Run})}, `"help" defined twice`},
		{[]Option{WithCommand(Command{Name: "", Run: echo().Run})}, "bad command name"},
		{[]Option{WithCommand(Command{Name: "two words", Run: echo().Run})}, "bad command name"},
		{[]Option{WithCommand(Command{Name: "norun"})}, `"norun" has no Run`},
		{[]Option{WithDevHook(nil)}, "hook 1 is nil"},
	} {
		if code, _, errOut := run(c.opts, "validate", "-config", repoFile); code != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("exit %d, stderr %q; want 1 and %q", code, errOut, c.want)
		}
	}
}

// hookRecorder is a dev hook that records what it was given.
type hookRecorder struct {
	mu      sync.Mutex
	info    *DevInfo
	stopped bool
}

func (h *hookRecorder) hook(ctx context.Context, info DevInfo) {
	h.mu.Lock()
	h.info = &info
	h.mu.Unlock()
	info.Report(fmt.Sprintf("hook: %d bots on %d client servers", info.Bots, len(info.ClientServers)))
	<-ctx.Done()
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
}

func TestDevHook(t *testing.T) {
	var h hookRecorder
	c := testutil.Start(t, func(ctx context.Context, stdout, stderr io.Writer) int {
		return Run(ctx, []string{"dev", "-config", repoFile, "-interval", "50ms", "-bots", "7"}, stdout, stderr, WithDevHook(h.hook))
	})
	sys, err := config.Load(repoFile)
	if err != nil {
		t.Fatal(err)
	}
	external := 0
	for _, g := range sys.Groups {
		if g.Visibility == config.External {
			external += g.Replicas
		}
	}
	if external == 0 {
		t.Fatal("the repository's cluster.yaml has no external group: the test checks nothing")
	}
	line := fmt.Sprintf("hook: 7 bots on %d client servers", external)
	c.Match(t, &c.Stdout, regexp.MustCompile(`(?m)^  `+line+`$`))
	// The report comes after the all-up line.
	if s := c.Stdout.String(); strings.Index(s, "all ") > strings.Index(s, line) {
		t.Errorf("the hook reported before every link was up:\n%s", s)
	}
	h.mu.Lock()
	info := h.info
	h.mu.Unlock()
	if info.Config == nil || info.Config.System != sys.System || info.Bots != 7 {
		t.Errorf("DevInfo: %+v", info)
	}
	for _, cs := range info.ClientServers {
		g, ok := sys.Group(cs.Group)
		if !ok || g.Visibility != config.External || !regexp.MustCompile(`^ws://127\.0\.0\.1:\d+/`).MatchString(cs.URL) || !strings.Contains(c.Stdout.String(), strings.TrimPrefix(cs.URL, "ws://")) {
			t.Errorf("client server %+v: want a ws:// URL dev printed, of an external group", cs)
		}
	}
	if code := c.Stop(t); code != 0 {
		t.Errorf("exit %d; stderr:\n%s", code, &c.Stderr)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.stopped {
		t.Error("dev returned before its hook did")
	}
}
