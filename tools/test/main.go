// Command test is the project's whole test suite with its set-up, for a
// fresh clone on a machine with only Go installed:
//
//	go run ./tools/test
//
// It builds the pinned Consul agent into .bin/ when it is missing (the
// integration tests start real agents from it), vets the code, and runs every
// package's tests with the race detector when cgo can build it (without it,
// and saying so, otherwise). Extra arguments are passed to go test, e.g.
// `go run ./tools/test -run TestRefusals ./cluster/`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"time"
)

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
	if err := command(ctx, root, "bash", "tools/consul/build.sh"); err != nil {
		return fmt.Errorf("building consul: %w", err)
	}
	consul := filepath.Join(root, ".bin", "consul")
	step("go vet ./...")
	if err := command(ctx, root, "go", "vet", "./..."); err != nil {
		return fmt.Errorf("go vet: %w", err)
	}
	testArgs := []string{"test", "-count=1", "-timeout=15m"}
	if raceAvailable(ctx, root) {
		testArgs = append(testArgs, "-race")
	} else {
		fmt.Println("NOTE: no C compiler for cgo, so the race detector is off; install gcc to run with -race")
	}
	pkgs := []string{"./..."}
	var flags []string
	for _, a := range args {
		if strings.HasPrefix(a, "./") || strings.HasPrefix(a, "github.com/") {
			if pkgs[0] == "./..." {
				pkgs = nil
			}
			pkgs = append(pkgs, a)
			continue
		}
		flags = append(flags, a)
	}
	testArgs = append(append(testArgs, flags...), pkgs...)
	step("go " + strings.Join(testArgs, " "))
	cmd := exec.CommandContext(ctx, "go", testArgs...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CLOUDRIFT_CONSUL="+consul)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go test: %w", err)
	}
	fmt.Printf("all tests passed in %s\n", time.Since(start).Round(time.Second))
	return nil
}

func step(s string) { fmt.Printf("==> %s\n", s) }

func command(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

// raceAvailable reports whether `go test -race` can build here: it needs cgo
// and a C compiler.
func raceAvailable(ctx context.Context, dir string) bool {
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

// moduleRoot finds the directory of this module's go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/cloudrift/cloudrift\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the cloudrift repository")
		}
		dir = parent
	}
}
