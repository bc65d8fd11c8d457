package clustertest_test

import (
	"fmt"
	"os"

	"github.com/cloudrift/cloudrift/clustertest"
)

// A system file with a lobby, where game clients connect on /play, and two
// world servers behind it. The kit's own tests use it too.
const exampleYAML = `
system: example
secret: a-secret-of-sufficient-length
groups:
  - name: lobby
    visibility: external
    connectsTo: [world]
    clients: {path: /play}
  - name: world
    visibility: internal
    replicas: 2
`

func Example() {
	t := &exampleT{} // in a test: the *testing.T
	defer t.cleanup()

	sys := clustertest.Start(t, exampleYAML) // every replica started and linked
	lobby := sys.Server("lobby-1")
	c := lobby.Dial() // an SDK client, closed at cleanup
	fmt.Println("welcomed by", c.Ref().Server)

	world := sys.Server("world-2")
	before := world.Incarnation()
	world.Kill() // as if its process died
	sys.WaitFor("lobby-1 to lose world-2", func() bool { return lobby.Cluster().Stats().LinksUp == 1 })
	fmt.Println("world-2 running:", world.Running())

	world.Restart() // same ID, new incarnation
	sys.WaitLinked("lobby")
	fmt.Println("new incarnation:", world.Incarnation() != before)
	worlds, _ := lobby.Host().RemoteGroup("world")
	for _, w := range worlds.Servers() {
		fmt.Println("lobby-1 sees", w.ID(), w.State())
	}
	// Output:
	// welcomed by lobby-1
	// world-2 running: false
	// new incarnation: true
	// lobby-1 sees world-1 connected
	// lobby-1 sees world-2 connected
}

// exampleT stands in for the *testing.T an Example has not: it runs the
// cleanups at the end and exits on failure.
type exampleT struct {
	cleanups []func()
	failed   bool
}

func (t *exampleT) Helper()                           {}
func (t *exampleT) Cleanup(f func())                  { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) Logf(format string, args ...any)   { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (t *exampleT) Errorf(format string, args ...any) { t.failed = true; t.Logf(format, args...) }
func (t *exampleT) Failed() bool                      { return t.failed }
func (t *exampleT) Fatalf(format string, args ...any) {
	t.Logf(format, args...)
	t.cleanup()
	os.Exit(1)
}

func (t *exampleT) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}
