package churntest

import (
	"syscall"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/internal/consultest"
)

// stopFor is how long a SIGSTOPped replica stays stopped: past the links'
// timeout (3s) and the registration's TTL (2s).
const stopFor = 4 * time.Second

// The load alone on processes and Consul: the baseline of the figures.
func TestProcessesNoEvent(t *testing.T) {
	skipShort(t)
	d := newDeployment(t, consultest.Start(t, consultest.Options{}).Addr())
	check, load := d.standard(LoadConfig{})
	d.run(check, load, scenario{name: "no event"})
}

// A cloud replica is killed (SIGKILL): its keys move to the others, its
// rows are placed again from the servers that hold them.
func TestReplicaKill(t *testing.T) {
	skipShort(t)
	d := newDeployment(t, consultest.Start(t, consultest.Options{}).Addr())
	check, load := d.standard(LoadConfig{})
	check.AllowMissing(OwnedBy("cloud-3", replicas3, replicas3[:2], load.Keys()))
	d.run(check, load, scenario{name: "replica SIGKILL", event: func() {
		d.byID("cloud-3").Kill()
	}}, "cloud-3")
}

// A cloud replica is stopped (SIGSTOP) past the links' timeout, then
// continued: only its keys may be missing meanwhile, and nothing is lost.
func TestReplicaStopContinue(t *testing.T) {
	skipShort(t)
	d := newDeployment(t, consultest.Start(t, consultest.Options{}).Addr())
	// Heavier reads, as for a join: when the replica comes back, the
	// moment it serves its keys before their rows arrived is short.
	check, load := d.standard(heavyReads)
	check.AllowMissing(OwnedBy("cloud-3", replicas3, replicas3, load.Keys()))
	d.run(check, load, scenario{name: "replica SIGSTOP, SIGCONT after 4s", event: func() {
		p := d.byID("cloud-3")
		p.Signal(syscall.SIGSTOP)
		time.Sleep(stopFor)
		p.Signal(syscall.SIGCONT)
	}}, "cloud-3")
}

// An external server is killed and started again: its clients lose their
// rows (they were theirs for the connection), connect again and post
// again; the other server's clients and every key are unaffected.
func TestExternalKillRestart(t *testing.T) {
	skipShort(t)
	d := newDeployment(t, consultest.Start(t, consultest.Options{}).Addr())
	check, load := d.standard(LoadConfig{})
	d.run(check, load, scenario{name: "external server SIGKILL and restart", event: func() {
		check.MayLose("front-2")
		d.byID("front-2").Kill()
		d.start("front", "front-2")
	}}, "front-2")
}

// The Consul agent restarts and forgets every registration (dev mode):
// every server registers again; no link drops, no key is missing.
func TestConsulAgentRestart(t *testing.T) {
	skipShort(t)
	agent := consultest.Start(t, consultest.Options{})
	d := newDeployment(t, agent.Addr())
	check, load := d.standard(LoadConfig{})
	d.run(check, load, scenario{name: "Consul agent restart", event: agent.Restart})
}

// One Consul server of three is lost (SIGKILL): the leader when the game
// servers do not register through it, otherwise a follower. The game
// servers register directly against server 1's HTTP API (no client
// agents), so none of their registrations lives on the lost server.
func TestConsulServerLoss(t *testing.T) {
	skipShort(t)
	c := consultest.StartCluster(t)
	d := newDeployment(t, c.Server(0).Addr())
	check, load := d.standard(LoadConfig{})
	lost := c.Leader(0)
	if lost <= 0 {
		lost = 1
	}
	t.Logf("losing Consul server %d of %d (leader: server %d)", lost+1, consultest.ClusterSize, c.Leader(0)+1)
	d.run(check, load, scenario{name: "loss of one Consul server of three", event: c.Server(lost).Kill})
}

// skipShort skips a process test under -short: it builds a binary and
// runs processes.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a binary and runs processes")
	}
}
