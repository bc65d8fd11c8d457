package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// tool is a program some tests need and the Debian package that brings it.
type tool struct {
	command string
	pkg     string
	usedBy  string
}

// tools are the programs outside Go that tests need. Their tests skip when
// one is missing, except under CI=true, where they fail; so the test
// command installs what is missing when it can (as root, with apt-get).
var tools = []tool{
	{"node", "nodejs", "the TypeScript SDK's tests (sdk/typescript)"},
	{"tsc", "node-typescript", "the TypeScript SDK's tests (sdk/typescript)"},
	{"chromium", "chromium", "the browser tests (sdk/typescript, examples/openworld/web)"},
	{"prometheus", "prometheus", "the operations port's scrape test (ops)"},
	{"redis-server", "redis-server", "the cloud-memory benchmark's Redis harness test (bench/cloud)"},
}

// installTools installs the Debian packages of missing tools. Without
// apt-get or root it says what is missing and goes on: the tests that need
// them then skip (or fail under CI=true, saying which package to install).
func installTools(ctx context.Context) error {
	var missing []tool
	for _, t := range tools {
		if _, err := exec.LookPath(t.command); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var pkgs []string
	for _, t := range missing {
		pkgs = append(pkgs, t.pkg)
		fmt.Printf("    %s is missing (Debian package %s), needed by %s\n", t.command, t.pkg, t.usedBy)
	}
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
		fmt.Printf("NOTE: cannot install them here (needs apt-get as root); install %s yourself\n", strings.Join(pkgs, " "))
		return nil
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if err := command(ctx, "/", env, "apt-get", "update", "-q"); err != nil {
		return fmt.Errorf("apt-get update: %w", err)
	}
	args := append([]string{"install", "-y", "-q", "--no-install-recommends"}, pkgs...)
	if err := command(ctx, "/", env, "apt-get", args...); err != nil {
		return fmt.Errorf("apt-get install %s: %w", strings.Join(pkgs, " "), err)
	}
	return nil
}

// generateWeb writes the TypeScript SDK's modules that the open world's
// browser client embeds; they are build output, not in the repository.
// Without tsc it says so and goes on: the browser tests then skip (or fail
// under CI=true).
func generateWeb(ctx context.Context, root string) error {
	if _, err := exec.LookPath("tsc"); err != nil {
		fmt.Println("NOTE: no tsc, so the browser client's SDK modules are not built; install node-typescript")
		return nil
	}
	if err := command(ctx, root, os.Environ(), "go", "generate", "./examples/openworld/web"); err != nil {
		return fmt.Errorf("go generate ./examples/openworld/web: %w", err)
	}
	return nil
}
