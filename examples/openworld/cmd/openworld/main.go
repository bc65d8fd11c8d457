// Command openworld is the open-world example built the way a studio builds
// its own cloudrift binary.
//
// A cloudrift system runs the studio's game logic as group plugins written in
// Go. Plugins register themselves by name when their package is initialised,
// so a studio's binary is just a main that imports its plugin packages for
// that side effect and hands over to the framework's command line, cli.Main.
// Options add the studio's own commands and dev-mode hooks; here, the bots of
// package bots and the browser client of package web. The result has every
// cloudrift command (dev, validate, run, status), the "bots" and "web"
// commands, and knows every plugin the system file may name:
//
//	go build -o openworld ./examples/openworld/cmd/openworld
//	./openworld validate -config cluster.yaml
//	./openworld dev -config cluster.yaml -bots 20   # also serves the page
//	./openworld bots -url ws://127.0.0.1:PORT/ -n 50 -duration 30s
//	./openworld web -url ws://127.0.0.1:PORT/ -config cluster.yaml
//	CLOUDRIFT_GROUP=world ./openworld run -config cluster.yaml
package main

import (
	"github.com/cloudrift/cloudrift/cli"
	"github.com/cloudrift/cloudrift/examples/openworld/bots"
	"github.com/cloudrift/cloudrift/examples/openworld/web"

	// The studio's plugins: this import registers gateway, world and chat.
	_ "github.com/cloudrift/cloudrift/examples/openworld"
	_ "github.com/cloudrift/cloudrift/plugins/cloudmemory" // the cloud memory: "cloudmemory" and its client
)

func main() {
	cli.Main(append(bots.Options(), web.Options()...)...)
}
