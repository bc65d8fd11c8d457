package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/config"
	_ "github.com/cloudrift/cloudrift/examples/openworld" // the plugins cluster.yaml names
	"github.com/cloudrift/cloudrift/internal/testutil"
	_ "github.com/cloudrift/cloudrift/plugins/cloudmemory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// repoFile is the repository's system file, relative to this package.
const repoFile = "../cluster.yaml"

// runSync runs a command that ends by itself.
func runSync(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut testutil.Buffer
	code = Run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// expected computes, straight from the file's groups, how many servers and
// links the whole system has.
func expected(t *testing.T, path string) (servers, links int) {
	t.Helper()
	sys, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range sys.Groups {
		servers += g.Replicas
		for _, to := range g.ConnectsTo {
			acceptor, _ := sys.Group(to)
			links += g.Replicas * acceptor.Replicas
		}
	}
	return servers, links
}

// start runs a serving command (dev, run) in the background; the test's
// cleanup stops it.
func start(t *testing.T, args ...string) *testutil.Command {
	t.Helper()
	return testutil.Start(t, func(ctx context.Context, stdout, stderr io.Writer) int {
		return Run(ctx, args, stdout, stderr)
	})
}

func TestValidateRepositoryFile(t *testing.T) {
	code, out, errOut := runSync(t, "validate", "-config", repoFile)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	sys, err := config.Load(repoFile)
	if err != nil {
		t.Fatal(err)
	}
	edges := 0
	for _, g := range sys.Groups {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(g.Name) + `\s+` + string(g.Visibility) + `\s+` + strconv.Itoa(g.Replicas) + `\s`).MatchString(out) {
			t.Errorf("group %s (%s, %d replicas) not listed:\n%s", g.Name, g.Visibility, g.Replicas, out)
		}
		for _, to := range g.ConnectsTo {
			a, _ := sys.Group(to)
			line := fmt.Sprintf(`%s → %s\s+\(%d × %d = %d links?\)`, g.Name, to, g.Replicas, a.Replicas, g.Replicas*a.Replicas)
			if !regexp.MustCompile(line).MatchString(out) {
				t.Errorf("no edge line %q in:\n%s", line, out)
			}
			edges++
		}
	}
	if edges == 0 {
		t.Fatal("the repository's cluster.yaml has no connectsTo: the test checks nothing")
	}
	_, links := expected(t, repoFile)
	if !strings.Contains(out, fmt.Sprintf("%d links in all", links)) {
		t.Errorf("no total of %d links in:\n%s", links, out)
	}
}

// writeFile writes a system file in a temporary directory.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// badTopology has two problems: an unknown group on line 6 and a replica
// count of 0 on line 7.
const badTopology = `system: bad
secret: dev-only-secret-change-me
groups:
  - name: client
    visibility: external
    connectsTo: [nowhere]
    replicas: 0
`

// badPlugins has two problems: a bad setting of the plugin on line 7 and an
// unknown plugin on line 9.
const badPlugins = `system: bad
secret: dev-only-secret-change-me
groups:
  - name: world
    visibility: internal
    plugins:
      - name: world
        settings: { regions: 0 }
      - name: nosuch
`

// badRegistry names a registry type no connector of this binary has, on
// line 4.
const badRegistry = `system: bad
secret: dev-only-secret-change-me
registry:
  type: etcd
groups:
  - name: world
    visibility: internal
`

// badRegistrySettings has a misspelt consul setting on line 6.
const badRegistrySettings = `system: bad
secret: dev-only-secret-change-me
registry:
  type: consul
  settings:
    adress: 127.0.0.1:8500
groups:
  - name: world
    visibility: internal
`

func TestValidateBadFiles(t *testing.T) {
	for _, c := range []struct {
		name, text string
		want       map[int]string // line → a word of its message
	}{
		{"topology", badTopology, map[int]string{6: "nowhere", 7: "replicas"}},
		{"plugins", badPlugins, map[int]string{7: "regions is 0", 9: "nosuch"}},
		{"registry type", badRegistry, map[int]string{4: `registry type "etcd": registry: unknown registry type: no such connector is compiled into this binary (have: consul, embedded)`}},
		{"registry settings", badRegistrySettings, map[int]string{6: `unknown key "adress" (did you mean "address"?)`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, "bad.yaml", c.text)
			code, out, errOut := runSync(t, "validate", "-config", path)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if strings.Contains(out, "OK") {
				t.Errorf("stdout says OK:\n%s", out)
			}
			for line, word := range c.want {
				re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(path) + `:` + strconv.Itoa(line) + `:.*` + regexp.QuoteMeta(word))
				if !re.MatchString(errOut) {
					t.Errorf("no line %d naming %q in stderr:\n%s", line, word, errOut)
				}
			}
			if !strings.Contains(errOut, plural(len(c.want), "problem", "problems")) {
				t.Errorf("stderr does not count %d problems:\n%s", len(c.want), errOut)
			}
		})
	}
}

func TestValidateMissingFile(t *testing.T) {
	code, _, errOut := runSync(t, "validate", "-config", filepath.Join(t.TempDir(), "none.yaml"))
	if code != 1 || !strings.Contains(errOut, "none.yaml") {
		t.Errorf("exit %d, stderr %q; want 1 naming the file", code, errOut)
	}
}

var allUp = regexp.MustCompile(`(?m)^all (\d+) servers? up, (\d+) links?$`)

func TestDevRunsRepositoryFile(t *testing.T) {
	servers, links := expected(t, repoFile)
	c := start(t, "dev", "-config", repoFile, "-interval", "100ms")
	m := c.Match(t, &c.Stdout, allUp)
	if m[1] != strconv.Itoa(servers) || m[2] != strconv.Itoa(links) {
		t.Errorf("%q, want %d servers and %d links", m[0], servers, links)
	}
	// A figures table follows, with every group.
	sys, _ := config.Load(repoFile)
	for _, g := range sys.Groups {
		re := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(g.Name) + fmt.Sprintf(`\s+%d/%d\s+`, g.Replicas, g.Replicas))
		c.Match(t, &c.Stdout, re)
	}
	if code := c.Stop(t); code != 0 {
		t.Errorf("exit %d after cancel, want 0; stderr:\n%s", code, &c.Stderr)
	}
	if !strings.HasSuffix(c.Stdout.String(), "stopped\n") {
		t.Errorf("output does not end with stopped:\n%s", &c.Stdout)
	}
}

func TestDevBadFile(t *testing.T) {
	path := writeFile(t, "bad.yaml", badPlugins)
	code, out, errOut := runSync(t, "dev", "-config", path)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if strings.Contains(out, "all ") {
		t.Errorf("dev started anyway:\n%s", out)
	}
	for _, line := range []int{7, 9} {
		if !strings.Contains(errOut, fmt.Sprintf("%s:%d:", path, line)) {
			t.Errorf("stderr does not name line %d:\n%s", line, errOut)
		}
	}
}

var listening = regexp.MustCompile(`server (\S+) of group "(\w+)" \(system "\w+"\) listening on (127\.0\.0\.1:\d+)`)

func TestRunFlagsAndEnvironment(t *testing.T) {
	t.Setenv("CLOUDRIFT_GROUP", "nosuch") // the flag wins
	t.Setenv("CLOUDRIFT_ID", "world-from-env")
	c := start(t, "run", "-config", repoFile, "-group", "world", "-log-level", "disabled")
	m := c.Match(t, &c.Stdout, listening)
	if m[1] != "world-from-env" || m[2] != "world" {
		t.Errorf("%q: want server world-from-env of group world", m[0])
	}
	if !strings.Contains(c.Stderr.String(), "no other process will see this server") {
		t.Errorf("no warning about the embedded registry:\n%s", &c.Stderr)
	}
	if code := c.Stop(t); code != 0 {
		t.Errorf("exit %d after cancel, want 0; stderr:\n%s", code, &c.Stderr)
	}
	if !strings.HasSuffix(c.Stdout.String(), "stopped\n") {
		t.Errorf("output does not end with stopped:\n%s", &c.Stdout)
	}
}

func TestRunGroupFromEnvironment(t *testing.T) {
	t.Setenv("CLOUDRIFT_GROUP", "social")
	t.Setenv("CLOUDRIFT_LISTEN", "127.0.0.1:0")
	c := start(t, "run", "-config", repoFile, "-log-level", "disabled")
	m := c.Match(t, &c.Stdout, listening)
	if m[2] != "social" || !strings.HasPrefix(m[1], "social-") {
		t.Errorf("%q: want a server of group social with a generated ID", m[0])
	}
	if code := c.Stop(t); code != 0 {
		t.Errorf("exit %d after cancel, want 0; stderr:\n%s", code, &c.Stderr)
	}
}

func TestRunUnknownGroup(t *testing.T) {
	code, _, errOut := runSync(t, "run", "-config", repoFile, "-group", "nosuch")
	if code != 1 || !strings.Contains(errOut, `no group "nosuch"`) || !strings.Contains(errOut, "world") {
		t.Errorf("exit %d, stderr:\n%s\nwant 1 and the list of groups", code, errOut)
	}
}

func TestRunForced(t *testing.T) {
	// A closed force channel turns the shutdown into an immediate close.
	force := make(chan struct{})
	c := testutil.Start(t, func(ctx context.Context, stdout, stderr io.Writer) int {
		return run(ctx, force, "cloudrift", []string{"run", "-config", repoFile, "-group", "world", "-log-level", "disabled"}, stdout, stderr)
	})
	c.Match(t, &c.Stdout, listening)
	close(force)
	if code := c.Stop(t); code != 1 {
		t.Errorf("forced stop: exit %d, want 1", code)
	}
	if !strings.Contains(c.Stderr.String(), "second signal") || !strings.HasSuffix(c.Stdout.String(), "stopped\n") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", &c.Stdout, &c.Stderr)
	}
}

func TestUsage(t *testing.T) {
	for _, c := range []struct {
		args   []string
		code   int
		stdout string // a word expected on stdout
		stderr string // a word expected on stderr
	}{
		{nil, 2, "", "Commands:"},
		{[]string{"help"}, 0, "Commands:", ""},
		{[]string{"help", "dev"}, 0, "-interval", ""},
		{[]string{"help", "run"}, 0, "CLOUDRIFT_ADVERTISE", ""},
		{[]string{"help", "nosuch"}, 2, "", "unknown command"},
		{[]string{"nosuch"}, 2, "", `unknown command "nosuch"`},
		{[]string{"dev", "-h"}, 0, "", "-log-level"},
		{[]string{"dev", "-interval", "0s"}, 2, "", "positive"},
		{[]string{"dev", "-log-level", "loud"}, 2, "", "loud"},
		{[]string{"validate", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"validate", "-nosuch"}, 2, "", "-nosuch"},
		{[]string{"run", "-config", repoFile}, 2, "", "-group"},
	} {
		if c.args != nil && c.args[0] == "run" {
			t.Setenv("CLOUDRIFT_GROUP", "")
		}
		code, out, errOut := runSync(t, c.args...)
		if code != c.code || !strings.Contains(out, c.stdout) || !strings.Contains(errOut, c.stderr) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				c.args, code, out, errOut, c.code, c.stdout, c.stderr)
		}
	}
}

// TestBinaryDevStopsOnSIGINT builds the real cloudrift binary, runs "cloudrift
// dev" on the repository's cluster.yaml as a process and interrupts it.
func TestBinaryDevStopsOnSIGINT(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "cloudrift")
	build := exec.Command(gobin, "build", "-o", bin, "./cmd/cloudrift")
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}

	servers, links := expected(t, repoFile)
	cmd := exec.Command(bin, "dev", "-interval", "200ms") // the default -config, cluster.yaml, in root
	cmd.Dir = root
	var errOut testutil.Buffer
	cmd.Stderr = &errOut
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out testutil.Buffer
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			out.Write([]byte(sc.Text() + "\n"))
			select {
			case lines <- sc.Text():
			default: // figures tables; only the first lines matter
			}
		}
	}()
	exited := make(chan error, 1)
	finish := func() error {
		for range lines { // drain until the pipe closes, then reap
		}
		return cmd.Wait()
	}

	deadline := time.After(20 * time.Second)
	up := false
	for !up {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("cloudrift dev exited before all servers were up: %v\nstdout:\n%s\nstderr:\n%s", finish(), &out, &errOut)
			}
			if m := allUp.FindStringSubmatch(l); m != nil {
				if m[1] != strconv.Itoa(servers) || m[2] != strconv.Itoa(links) {
					t.Errorf("%q, want %d servers and %d links", l, servers, links)
				}
				up = true
			}
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("no all-up line within 20 s (%v)\nstdout:\n%s\nstderr:\n%s", finish(), &out, &errOut)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() { exited <- finish() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("cloudrift dev after SIGINT: %v (want exit status 0)\nstderr:\n%s", err, &errOut)
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("cloudrift dev still running 15 s after SIGINT\nstderr:\n%s", &errOut)
	}
	if !strings.HasSuffix(out.String(), "stopped\n") {
		t.Errorf("output does not end with stopped:\n%s", &out)
	}
}

func TestReplicaAddr(t *testing.T) {
	for _, c := range []struct {
		addr string
		i    int
		want string
	}{
		{"127.0.0.1:0", 3, "127.0.0.1:0"},
		{"", 2, "127.0.0.1:0"},
		{"127.0.0.1:7350", 1, "127.0.0.1:7350"},
		{"127.0.0.1:7350", 3, "127.0.0.1:7352"},
		{":7350", 2, ":7351"},
		{"[::1]:9000", 2, "[::1]:9001"},
		{"127.0.0.1:65535", 2, "error"},
		{"nonsense", 1, "error"},
	} {
		got, err := replicaAddr(c.addr, c.i)
		if err != nil {
			got = "error"
		}
		if got != c.want {
			t.Errorf("replicaAddr(%q, %d) = %q (%v), want %q", c.addr, c.i, got, err, c.want)
		}
	}
}
