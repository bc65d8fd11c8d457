// Command cloudrift is the stock cloudrift binary: the CLI of package cli
// (dev, validate, run, status) with the plugins of this repository compiled
// in, and the open-world example's bots: the "bots" command, and the bots
// "dev" starts (-bots, 4 by default) so that
//
//	go run ./cmd/cloudrift dev
//
// shows the repository's cluster.yaml at work.
//
// The registry connectors "embedded" and "consul" come with package cli.
//
// A studio builds its own binary instead, importing its own plugin packages
// and any registry connector of its own; see examples/openworld/cmd/openworld
// and examples/fileregistry/cmd/fileregistry.
package main

import (
	"github.com/cloudrift/cloudrift/cli"
	"github.com/cloudrift/cloudrift/examples/openworld/bots"

	// The open-world example's plugins (gateway, world, chat), so the
	// repository's cluster.yaml runs out of the box with
	// "go run ./cmd/cloudrift dev".
	_ "github.com/cloudrift/cloudrift/examples/openworld"
	_ "github.com/cloudrift/cloudrift/plugins/cloudmemory" // the cloud memory: "cloudmemory" and its client
)

func main() {
	cli.Main(bots.Options()...)
}
