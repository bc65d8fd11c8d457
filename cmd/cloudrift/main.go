// Command cloudrift is the stock cloudrift binary: the CLI of package cli
// (dev, validate, run) with the plugins of this repository compiled in.
//
// A studio builds its own binary instead, importing its own plugin packages;
// see examples/openworld/cmd/openworld.
package main

import (
	"github.com/cloudrift/cloudrift/cli"

	// The open-world example's plugins (gateway, world, chat), so the
	// repository's cluster.yaml runs out of the box with
	// "go run ./cmd/cloudrift dev". The built-in plugins (cloud memory,
	// health, ...) will be imported here too.
	_ "github.com/cloudrift/cloudrift/examples/openworld"
)

func main() {
	cli.Main()
}
