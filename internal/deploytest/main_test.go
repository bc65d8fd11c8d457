package deploytest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/internal/consultest"
)

// binary is the cloudrift binary TestMain builds; empty when the tests
// will skip (no consul binary outside CI).
var binary string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if _, err := consultest.Binary(); err != nil && os.Getenv("CI") != "true" {
		// Every test skips in consultest.Start; building would be wasted.
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "deploytest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploytest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	bin, err := Build(dir, raceEnabled)
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploytest:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "deploytest: built %s (race %v) in %v\n", bin, raceEnabled, time.Since(start).Round(time.Millisecond))
	binary = bin
	return m.Run()
}
