// Command openworld is the open-world example built the way a studio builds
// its own cloudrift binary.
//
// A cloudrift system runs the studio's game logic as group plugins written in
// Go. Plugins register themselves by name when their package is initialised,
// so a studio's binary is just a main that imports its plugin packages for
// that side effect and hands over to the framework's command line, cli.Main.
// The result has every cloudrift command (dev, validate, run) and knows every
// plugin the system file may name:
//
//	go build -o openworld ./examples/openworld/cmd/openworld
//	./openworld validate -config cluster.yaml
//	./openworld dev -config cluster.yaml
//	CLOUDRIFT_GROUP=world ./openworld run -config cluster.yaml
package main

import (
	"github.com/cloudrift/cloudrift/cli"

	// The studio's plugins: this import registers gateway, world and chat.
	_ "github.com/cloudrift/cloudrift/examples/openworld"
)

func main() {
	cli.Main()
}
