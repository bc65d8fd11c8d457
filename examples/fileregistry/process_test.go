package fileregistry_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/internal/testutil"
)

// proc is one "run" process of the example binary.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr testutil.Buffer
	exited         chan struct{}
	err            error // set before exited closes
}

// startProc starts bin run for group as server id, killed when the test
// ends if still running.
func startProc(t *testing.T, bin, config, dir, group, id string) *proc {
	t.Helper()
	p := &proc{name: id, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "run", "-config", config, "-group", group, "-id", id, "-log-level", "info")
	p.cmd.Env = append(os.Environ(), "FILEREGISTRY_DIR="+dir, "CLOUDRIFT_SECRET=process-test-secret-0123456789")
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// count returns how many times re matches p's stderr.
func (p *proc) count(re *regexp.Regexp) int { return len(re.FindAllStringIndex(p.stderr.String(), -1)) }

// waitLog waits until re matches p's stderr at least n times.
func (p *proc) waitLog(t *testing.T, re *regexp.Regexp, n int) {
	t.Helper()
	testutil.WaitFor(t, p.name+" logging "+re.String(), func() bool {
		select {
		case <-p.exited:
			t.Fatalf("%s exited (%v) before logging %s:\n%s", p.name, p.err, re, &p.stderr)
		default:
		}
		return p.count(re) >= n
	})
}

// signal sends sig and waits, within testutil.Patience, for the exit.
func (p *proc) signal(t *testing.T, sig os.Signal) error {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		return p.err
	case <-time.After(testutil.Patience):
		t.Fatalf("%s did not exit on %v:\n%s", p.name, sig, &p.stderr)
		return nil
	}
}

func linkUp(peer string) *regexp.Regexp {
	return regexp.MustCompile(`link up.*peer=` + regexp.QuoteMeta(peer) + `\b`)
}

// TestProcessesLinkThroughFiles builds the example binary with go build and
// runs the example's system as separate processes of the stock cli, which
// find each other only through the file registry's directory. A world
// server that crashes and restarts (same ID, new incarnation and port) is
// linked to again; a graceful stop removes every member file.
func TestProcessesLinkThroughFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary and runs processes")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	bin := filepath.Join(t.TempDir(), "fileregistry")
	build := exec.Command(gobin, "build", "-o", bin, "./cmd/fileregistry")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	config, err := filepath.Abs("cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	world1 := startProc(t, bin, config, dir, "world", "world-1")
	world2 := startProc(t, bin, config, dir, "world", "world-2")
	client := startProc(t, bin, config, dir, "client", "client-1")
	client.waitLog(t, linkUp("world-1"), 1)
	client.waitLog(t, linkUp("world-2"), 1)
	world1.waitLog(t, linkUp("client-1"), 1)
	if !regexp.MustCompile(`file registry`).MatchString(client.stdout.String()) {
		t.Errorf("run does not name the file registry: %q", client.stdout.String())
	}

	// world-2 crashes: its file stays, unrenewed. Its restart registers
	// the same ID with a new incarnation and port, and the client links
	// to it again.
	world2.signal(t, syscall.SIGKILL)
	world2 = startProc(t, bin, config, dir, "world", "world-2")
	client.waitLog(t, linkUp("world-2"), 2)
	world2.waitLog(t, linkUp("client-1"), 1)

	for _, p := range []*proc{client, world1, world2} {
		if err := p.signal(t, syscall.SIGTERM); err != nil {
			t.Errorf("%s: %v\n%s", p.name, err, &p.stderr)
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "filedemo", "*", "*.json"))
	if err != nil || len(files) != 0 {
		t.Errorf("member files left after every server stopped: %v %v", files, err)
	}
}
