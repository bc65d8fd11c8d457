package churntest

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/internal/deploytest"
)

// The cloudrift binary of the process tests, built by the first that
// needs it (with -race when the tests run with it) into buildDir.
var (
	buildOnce sync.Once
	buildDir  string
	binary    string
	buildErr  error
)

// cloudrift returns the binary, building it on the first call.
func cloudrift(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "churntest-"); buildErr != nil {
			return
		}
		start := time.Now()
		binary, buildErr = deploytest.Build(buildDir, raceEnabled)
		t.Logf("built %s (race %v) in %v", binary, raceEnabled, time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatalf("churntest: %v", buildErr)
	}
	return binary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	// Every client, server and process reader the tests started has
	// ended with its test.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "churntest: leaked goroutines:", err)
			code = 1
		}
	}
	if err := writeFigures(); err != nil {
		fmt.Fprintln(os.Stderr, "churntest: figures:", err)
		code = 1
	}
	os.Exit(code)
}
