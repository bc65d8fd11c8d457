// Command fileregistry is the stock cloudrift command line with a studio's
// own registry connector compiled in: the blank import registers the
// "file" connector, and the system file names it. Every cloudrift command
// (dev, validate, run, status) works as in the stock binary:
//
//	go build -o fileregistry ./examples/fileregistry/cmd/fileregistry
//	./fileregistry validate -config examples/fileregistry/cluster.yaml
//	./fileregistry run -config examples/fileregistry/cluster.yaml -group world -id world-1 &
//	./fileregistry run -config examples/fileregistry/cluster.yaml -group world -id world-2 &
//	./fileregistry run -config examples/fileregistry/cluster.yaml -group client -id client-1
package main

import (
	"github.com/cloudrift/cloudrift/cli"

	// The studio's registry connector: this import registers "file".
	_ "github.com/cloudrift/cloudrift/examples/fileregistry"
)

func main() {
	cli.Main()
}
