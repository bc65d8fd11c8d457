// Command test is the project's whole test suite with its set-up, for a
// fresh clone on a machine with only Go installed:
//
//	go run ./tools/test
//
// It builds the pinned Consul agent into .bin/ when it is missing (the
// integration tests start real agents from it; building it is also the only
// check of the tools/consul module), installs the Debian packages of the
// programs some tests need when they are missing (Node.js and TypeScript,
// see packages.go), then vets and tests every module of
// the repository in turn: the framework at the root, examples/stats and
// bench, each with its own go.mod so that the framework's requirements stay
// its own. Tests run with the race detector when cgo can build it (without
// it, and saying so, otherwise). A module that fails does not stop the
// others; the summary at the end gives each module's outcome.
//
// Extra arguments are passed to go test; package patterns are sent to the
// modules they name, e.g. `go run ./tools/test -run TestRefusals ./cluster/`
// or `go run ./tools/test ./bench/cloud/`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// modules are the repository's Go modules that are vetted and tested, by
// directory relative to the root. tools/consul is not here: it holds no
// package, only the pinned agent's requirements, and build.sh builds it.
var modules = []string{".", "examples/stats", "bench"}

// heavy are the packages whose tests run whole systems in Docker: they run
// after every other package of their module, one at a time.
var heavy = []string{
	modulePath + "/internal/containertest",
	modulePath + "/tools/chaos",
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "test:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	start := time.Now()
	step("building the pinned Consul agent (first time: several minutes)")
	if err := command(ctx, root, nil, "bash", "tools/consul/build.sh"); err != nil {
		return fmt.Errorf("building consul: %w", err)
	}
	step("system packages the tests need")
	if err := installTools(ctx); err != nil {
		return fmt.Errorf("installing test tools: %w", err)
	}
	step("building the browser client's SDK modules (go generate ./examples/openworld/web)")
	if err := generateWeb(ctx, root); err != nil {
		return err
	}
	env := append(os.Environ(), "CLOUDRIFT_CONSUL="+filepath.Join(root, ".bin", "consul"))

	testArgs := []string{"test", "-count=1", "-timeout=15m"}
	if raceAvailable(ctx) {
		testArgs = append(testArgs, "-race")
	} else {
		fmt.Println("NOTE: no C compiler for cgo, so the race detector is off; install gcc to run with -race")
	}
	var flags, patterns []string
	for _, a := range args {
		if strings.HasPrefix(a, "./") || strings.HasPrefix(a, "github.com/") {
			patterns = append(patterns, a)
			continue
		}
		flags = append(flags, a)
	}
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	testArgs = append(testArgs, flags...)

	var summary []string
	failed := false
	for _, mod := range modules {
		pkgs := modulePatterns(mod, patterns)
		if len(pkgs) == 0 {
			continue
		}
		dir := filepath.Join(root, mod)
		name := mod
		if mod == "." {
			name = "root"
		}
		modStart := time.Now()
		outcome := "passed"
		step(fmt.Sprintf("[%s] go vet %s", name, strings.Join(pkgs, " ")))
		if err := command(ctx, dir, env, "go", append([]string{"vet"}, pkgs...)...); err != nil {
			outcome = "go vet failed"
		} else {
			rest, heavy, err := splitHeavy(ctx, dir, pkgs)
			if err != nil {
				return err
			}
			if len(rest) > 0 {
				step(fmt.Sprintf("[%s] go %s %s", name, strings.Join(testArgs, " "), strings.Join(rest, " ")))
				if err := command(ctx, dir, env, "go", append(append([]string{}, testArgs...), rest...)...); err != nil {
					outcome = "go test failed"
				}
			}
			if len(heavy) > 0 {
				// The Docker suites run after the rest, one at a time:
				// each starts a dozen containers, and a machine busy with
				// other tests starves their Consul servers of CPU.
				args := append(append([]string{}, testArgs...), "-p", "1")
				step(fmt.Sprintf("[%s] go %s %s", name, strings.Join(args, " "), strings.Join(heavy, " ")))
				if err := command(ctx, dir, env, "go", append(args, heavy...)...); err != nil {
					outcome = "go test failed"
				}
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		failed = failed || outcome != "passed"
		summary = append(summary, fmt.Sprintf("  %-16s %s in %s", name, outcome, time.Since(modStart).Round(time.Second)))
	}
	fmt.Println("==> summary")
	fmt.Println(strings.Join(summary, "\n"))
	if failed {
		return errors.New("some modules failed (see above)")
	}
	fmt.Printf("all tests passed in %s\n", time.Since(start).Round(time.Second))
	return nil
}

// modulePatterns returns the package patterns of patterns that fall in the
// module at dir (relative to the root), rewritten relative to that module.
// A pattern belongs to the innermost module holding its directory; a
// pattern ending in "/..." also covers every module below its directory.
// Import-path patterns (github.com/...) are matched the same way by path.
func modulePatterns(mod string, patterns []string) []string {
	var out []string
	for _, p := range patterns {
		rel, wild, importPath := splitPattern(p)
		switch {
		case owner(rel) == mod:
			out = append(out, rejoin(mod, rel, wild, importPath))
		case wild && under(mod, rel):
			out = append(out, rejoin(mod, mod, true, importPath))
		}
	}
	return out
}

const modulePath = "github.com/cloudrift/cloudrift"

// splitPattern turns a pattern into a slash-separated directory relative to
// the root ("." for the root), whether it ends in "/...", and whether it was
// given as an import path.
func splitPattern(p string) (rel string, wild, importPath bool) {
	if strings.HasPrefix(p, modulePath) {
		importPath = true
		p = "." + strings.TrimPrefix(p, modulePath)
		if p == "." {
			p = "./"
		}
	}
	if p == "..." || strings.HasSuffix(p, "/...") {
		wild = true
		p = strings.TrimSuffix(p, "...")
	}
	rel = filepath.ToSlash(filepath.Clean(p))
	return rel, wild, importPath
}

// owner returns the innermost module holding the directory rel.
func owner(rel string) string {
	best := "."
	for _, m := range modules {
		if m != "." && under(rel, m) && len(m) > len(best) {
			best = m
		}
	}
	return best
}

// under reports whether the directory a is b or below it.
func under(a, b string) bool {
	return b == "." || a == b || strings.HasPrefix(a, b+"/")
}

// rejoin writes the directory rel as a pattern for the module mod.
func rejoin(mod, rel string, wild, importPath bool) string {
	sub := rel
	if mod != "." {
		sub = strings.TrimPrefix(strings.TrimPrefix(rel, mod), "/")
		if sub == "" {
			sub = "."
		}
	}
	var p string
	if importPath {
		p = modulePath
		if mod != "." {
			p += "/" + mod
		}
		if sub != "." {
			p += "/" + sub
		}
		if wild {
			p += "/..."
		}
		return p
	}
	p = "./" + sub
	if sub == "." {
		p = "."
	}
	if wild {
		p = strings.TrimSuffix(p, "/") + "/..."
	}
	return p
}

func step(s string) { fmt.Printf("==> %s\n", s) }

// command runs name in dir with env (nil: this process's), its output
// going to ours.
func command(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

// raceAvailable reports whether `go test -race` can build here: it needs cgo
// and a C compiler.
func raceAvailable(ctx context.Context) bool {
	out, err := exec.CommandContext(ctx, "go", "env", "CGO_ENABLED", "CC").Output()
	if err != nil {
		return false
	}
	f := strings.Fields(string(out))
	if len(f) < 2 || f[0] != "1" {
		return false
	}
	_, err = exec.LookPath(f[1])
	return err == nil
}

// moduleRoot finds the directory of the root module's go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module "+modulePath+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the cloudrift repository")
		}
		dir = parent
	}
}

// splitHeavy lists the packages of patterns in the module at dir and
// splits off the heavy ones.
func splitHeavy(ctx context.Context, dir string, patterns []string) (rest, heavyPkgs []string, err error) {
	cmd := exec.CommandContext(ctx, "go", append([]string{"list"}, patterns...)...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("go list %s: %w", strings.Join(patterns, " "), err)
	}
	for _, p := range strings.Fields(string(out)) {
		if slices.Contains(heavy, p) {
			heavyPkgs = append(heavyPkgs, p)
		} else {
			rest = append(rest, p)
		}
	}
	return rest, heavyPkgs, nil
}
