// Package child runs a bench's child processes: a copy of the bench binary
// (or any program) that speaks in lines on stdout, reads commands as lines
// on stdin, and exits when its stdin closes. The benches use them to
// measure servers and clients in processes of their own.
package child

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ErrChild is wrapped by Expect's errors about the child's output.
var ErrChild = errors.New("child process failed")

// Process is a running child process. Start one with Start; Stop it.
type Process struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string // stdout lines; closed at EOF
}

// Start starts exe with args, its stderr the bench's own.
func Start(exe string, args ...string) (*Process, error) {
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", exe, err)
	}
	p := &Process{cmd: cmd, in: in, lines: make(chan string, 16)}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	return p, nil
}

// PID is the child's process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Send writes one command line to the child's stdin.
func (p *Process) Send(words ...any) error {
	_, err := fmt.Fprintln(p.in, words...)
	return err
}

// Expect waits for the child's next line, which must be prefix or start
// with prefix and a space, and returns the rest of it.
func (p *Process) Expect(ctx context.Context, prefix string) (string, error) {
	select {
	case l, ok := <-p.lines:
		if !ok {
			return "", fmt.Errorf("%s exited: %w", p.name(), ErrChild)
		}
		rest, found := strings.CutPrefix(l, prefix+" ")
		if l == prefix {
			rest, found = "", true
		}
		if !found {
			return "", fmt.Errorf("%s: want %q, got %q: %w", p.name(), prefix, l, ErrChild)
		}
		return rest, nil
	case <-ctx.Done():
		return "", fmt.Errorf("%s: waiting for %q: %w", p.name(), prefix, ctx.Err())
	}
}

// Stop closes the child's stdin, waits up to grace for it to exit, then
// kills it (by its own PID) and waits.
func (p *Process) Stop(grace time.Duration) {
	p.in.Close()
	Wait(p.cmd, grace)
}

// Wait waits for a started cmd to exit, and kills it (by its own PID)
// when it has not within grace.
func Wait(cmd *exec.Cmd, grace time.Duration) {
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

// name is the child's first argument: the bench's command it runs.
func (p *Process) name() string {
	if len(p.cmd.Args) > 1 {
		return p.cmd.Args[1]
	}
	return p.cmd.Args[0]
}
