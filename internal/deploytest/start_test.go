package deploytest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/internal/consultest"
)

// registerRetryMsg is the line "run" logs for each failed registration
// while its registry is unavailable.
const registerRetryMsg = "registry unavailable; registering again after the wait"

// "run" started before its Consul agent does not exit: it logs each
// registration attempt (number, error naming the agent, next wait), and
// once the agent is up it registers and links as usual.
func TestRunWaitsForConsul(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	d := newDeployment(t, agent, "")
	agent.Stop()
	stopped := time.Now()

	back := d.start("back", "back-1")
	retry := func(l logLine) bool { return l.Message == registerRetryMsg }
	d.waitFor("three registration attempts logged", func() bool { return len(back.Logs(stopped, retry)) >= 3 })
	for i, l := range back.Logs(stopped, retry)[:3] {
		if l.Attempt != i+1 || l.RetryIn <= 0 || !strings.Contains(l.Error, agent.Addr()) || !strings.Contains(l.Error, "connection refused") {
			t.Errorf("attempt line %d: attempt %d, retry_in %vms, error %q; want attempt %d, a wait, and the refused address %s",
				i+1, l.Attempt, l.RetryIn, l.Error, i+1, agent.Addr())
		}
	}

	agent.Restart()
	up := time.Now()
	d.waitFor("back-1 registered", d.allPassing)
	d.waitFor("back-1 saying it registered", func() bool {
		_, ok := back.Find(stopped, func(l logLine) bool { return l.Message == "registered: the registry is reachable" })
		return ok
	})
	t.Logf("run before its agent: %d attempts logged; registered %s after the agent was back",
		len(back.Logs(stopped, retry)), ms(time.Since(up)))
	// It serves: a downstream server finds and links it.
	d.start("mid", "mid-1")
	d.mesh()
}

// With no registry for registry.startTimeout, "run" exits 1 with a message
// naming the registry's address and the bound.
func TestRunGivesUpOnConsul(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	newDeployment(t, agent, "") // skips or fails like the other tests without a binary
	agent.Stop()
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	text := strings.Replace(system(agent.Addr(), ""), "registry:\n", "registry:\n  startTimeout: 2s\n", 1)
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "back", "back-1", file, "127.0.0.1:0")
	stderr, err := p.WaitExit()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("run ended with %v, want exit status 1", err)
	}
	for _, w := range []string{"registry unreachable: registering back-1: gave up after 2s (registry.startTimeout)", agent.Addr(), "connection refused"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr does not mention %q:\n%s", w, stderr)
		}
	}
	if n := len(p.Logs(time.Time{}, func(l logLine) bool { return l.Message == registerRetryMsg })); n < 2 {
		t.Errorf("%d registration attempts logged before giving up, want several", n)
	}
	t.Logf("run gives up: %s", lastLine(stderr))
}
