package deploytest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/examples/openworld/bots"
	"github.com/cloudrift/cloudrift/internal/consultest"
	"github.com/cloudrift/cloudrift/protocol"
)

// exampleSystem is the repository's example system (cluster.yaml: the
// open-world plugins and the cloud memory) on the Consul agent at addr,
// with the link timings of system. Every group runs two replicas.
func exampleSystem(addr string) string {
	return fmt.Sprintf(`system: rolling
secret: rolling-secret-0123456789abcdef
registry:
  type: consul
  settings:
    address: %s
    ttl: %s
links:
  heartbeat: 250ms
  timeout: 3s
  backoffMin: 50ms
  backoffMax: 500ms
groups:
  - name: client
    visibility: external
    connectsTo: [world, social, cloud]
    clients:
      drainTimeout: 20s
    plugins:
      - name: gateway
  - name: world
    visibility: internal
    connectsTo: [cloud]
    plugins:
      - name: world
  - name: social
    visibility: internal
    plugins:
      - name: chat
  - name: cloud
    visibility: internal
    plugins:
      - name: cloudmemory
`, addr, ttl)
}

// Clients of the rolling restart: players only stay connected (the
// gateway streams them positions), uploaders post a row each and keep
// updating it, watchers hold a View of every uploader's key.
const (
	rollPlayers   = 6
	rollUploaders = 3
	rollWatchers  = 2
	rollBots      = 8 // open-world bots (examples/openworld/bots), walking and chatting
)

// rollOrder is the order groups are restarted in, and started in
// (upstream groups first).
var rollOrder = []string{"cloud", "social", "world", "client"}

// killStep names the baseline step in the failover figures.
const killStep = "client, SIGKILL (baseline)"

// rolling is one rolling-restart run.
type rolling struct {
	t      *testing.T
	d      *deployment
	listen map[string]string // server ID → listen address it keeps across restarts
	cur    map[string]*proc

	mu    sync.Mutex
	step  string // the group being restarted, for the failover figures
	began time.Time
	bots  bots.Progress // the swarm's latest report
	fos   map[string][]client.Failover
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs server id of group and waits until its /readyz answers 200.
func (r *rolling) start(group, id string) *proc {
	r.t.Helper()
	p := startProc(r.t, group, id, r.d.file, r.listen[id])
	r.d.procs = append(r.d.procs, p)
	r.cur[id] = p
	var ops string
	r.d.waitFor(id+" to print its operations port", func() bool {
		ops = p.stdoutField("operations port ")
		return ops != ""
	})
	r.d.waitFor(id+" ready", func() bool {
		resp, err := http.Get(ops + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// stdoutField returns the first word after prefix on a stdout line that
// starts with it; "" when there is none yet.
func (p *proc) stdoutField(prefix string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.stdout {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			return strings.Fields(rest)[0]
		}
	}
	return ""
}

// terminate sends SIGTERM (a drain) and waits until the process exits
// with status 0.
func (r *rolling) terminate(p *proc) {
	r.t.Helper()
	p.mu.Lock()
	p.killed = time.Now() // an expected exit, for waitFor
	p.mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		r.t.Fatalf("SIGTERM %s: %v", p.ID, err)
	}
	if stderr, err := p.WaitExit(); err != nil {
		r.t.Fatalf("%s exited with %v after SIGTERM:\n%s", p.ID, err, lastLines(stderr, 20))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// reconnector starts a Reconnector on the client servers; it runs until
// the test ends. onConnect, when set, also sees each new client.
func (r *rolling) reconnector(i int, repost bool, onConnect func(*client.Client)) *client.Reconnector {
	urls := []string{"ws://" + r.listen["client-1"] + "/", "ws://" + r.listen["client-2"] + "/"}
	first := i % 2
	rc := &client.Reconnector{
		Options:    client.Options{URL: urls[first], Handler: func(client.Message) {}},
		URLs:       []string{urls[1-first]},
		Directory:  "http://" + r.listen["client-1"] + "/servers",
		Repost:     repost,
		MinBackoff: 50 * time.Millisecond,
		MaxBackoff: time.Second,
		OnConnect:  onConnect,
		OnFailover: func(f client.Failover) {
			r.mu.Lock()
			r.fos[r.step] = append(r.fos[r.step], f)
			r.mu.Unlock()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rc.Run(ctx) }()
	r.t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			r.t.Errorf("reconnector %d ended with %v", i, err)
		}
	})
	return rc
}

// connected waits until every reconnector holds a live client and every
// bot is connected.
func (r *rolling) connected(what string, rcs []*client.Reconnector) {
	r.t.Helper()
	r.d.waitFor(what, func() bool {
		r.mu.Lock()
		botsIn := r.bots.Connected
		r.mu.Unlock()
		if botsIn != rollBots {
			return false
		}
		for _, rc := range rcs {
			c := rc.Current()
			if c == nil {
				return false
			}
			select {
			case <-c.Done():
				return false
			default:
			}
		}
		return true
	})
}

// uploader posts its key's row every 100 ms on whatever client its
// reconnector holds, until stop closes; then it posts final until that
// succeeds.
func (r *rolling) uploader(rc *client.Reconnector, key cloud.Key, stop <-chan struct{}, final string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				deadline := time.Now().Add(wait)
				for time.Now().Before(deadline) {
					if c := rc.Current(); c != nil {
						ctx, cancel := context.WithTimeout(context.Background(), time.Second)
						err := c.Post(ctx, key, []byte(final))
						cancel()
						if err == nil {
							return
						}
					}
					time.Sleep(50 * time.Millisecond)
				}
				r.t.Errorf("uploader %s: the final post never succeeded", key.Primary)
				return
			case <-t.C:
			}
			if c := rc.Current(); c != nil {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = c.Post(ctx, key, []byte(fmt.Sprintf("%s-%d", key.Primary, seq))) // a post cut by a move is reposted
				cancel()
			}
		}
	}()
	return done
}

// TestRollingRestart restarts every group of the example system, one
// server at a time (SIGTERM: drain, stop; then start again on the same
// address), while players, cloud uploaders and View watchers run on Go SDK
// Reconnectors, and open-world bots walk and chat. Every client must be
// connected again after each restart, no bot connection may drop (a bot
// follows the Move), no Reconnector may give up, and at the end every watcher's View must
// hold exactly each uploader's final row under its current ref. The
// failover times are logged per group (bench/RESULTS.md), not asserted.
func TestRollingRestart(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	d := newDeployment(t, agent, "")
	if err := os.WriteFile(d.file, []byte(exampleSystem(agent.Addr())), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &rolling{t: t, d: d, listen: map[string]string{}, cur: map[string]*proc{}, fos: map[string][]client.Failover{}}
	for _, g := range rollOrder {
		for i := 1; i <= 2; i++ {
			id := fmt.Sprintf("%s-%d", g, i)
			r.listen[id] = "127.0.0.1:0"
			if g == "client" {
				// Client servers keep their address, as behind a load
				// balancer: the configured URLs stay right.
				r.listen[id] = freeAddr(t)
			}
			r.start(g, id)
		}
	}

	var all []*client.Reconnector
	for i := range rollPlayers {
		all = append(all, r.reconnector(i, false, nil))
	}
	keys := make([]cloud.Key, rollUploaders)
	uploaders := make([]*client.Reconnector, rollUploaders)
	for i := range uploaders {
		keys[i] = cloud.Key{Primary: fmt.Sprintf("up%d", i)}
		uploaders[i] = r.reconnector(rollPlayers+i, true, nil)
	}
	all = append(all, uploaders...)
	watchers := make([]*client.Reconnector, rollWatchers)
	for i := range watchers {
		watchers[i] = r.reconnector(rollPlayers+rollUploaders+i, false, nil)
	}
	all = append(all, watchers...)
	swarm := &bots.Swarm{
		URLs:      []string{"ws://" + r.listen["client-1"] + "/", "ws://" + r.listen["client-2"] + "/"},
		Directory: "http://" + r.listen["client-2"] + "/servers",
		Players:   rollBots,
		MoveEvery: 200 * time.Millisecond,
		ChatEvery: 2 * time.Second,
	}
	botCtx, endBots := context.WithCancel(context.Background())
	botsDone := make(chan bots.Progress, 1)
	go func() {
		p, err := swarm.Run(botCtx, 50*time.Millisecond, func(p bots.Progress) {
			r.mu.Lock()
			r.bots = p
			r.mu.Unlock()
		})
		if err != nil {
			t.Errorf("bots: %v", err)
		}
		botsDone <- p
	}()
	t.Cleanup(endBots)
	r.connected("every client connected", all)
	views := make([]*client.View, rollWatchers)
	for i, w := range watchers {
		v, err := w.View(t.Context(), keys)
		if err != nil {
			t.Fatal(err)
		}
		views[i] = v
	}
	stop := make(chan struct{})
	var ups []<-chan struct{}
	for i, u := range uploaders {
		ups = append(ups, r.uploader(u, keys[i], stop, fmt.Sprintf("final-%d", i)))
	}

	restarted := 0
	held := 0 // clients on a client server when it drained: each must move
	r.began = time.Now()
	for _, g := range rollOrder {
		for i := 1; i <= 2; i++ {
			id := fmt.Sprintf("%s-%d", g, i)
			r.mu.Lock()
			r.step = g
			r.mu.Unlock()
			old := r.cur[id]
			if g == "client" {
				for _, rc := range all {
					if rc.Current().Ref().Server == id {
						held++
					}
				}
			}
			r.terminate(old)
			if g == "client" {
				// Every client moved before the drain timeout.
				if _, ok := old.Find(old.started, func(l logLine) bool { return l.Message == "every client left" }); !ok {
					t.Errorf("%s: the drain did not see every client leave:\n%s", id, lastLines(old.StderrText(), 20))
				}
			}
			r.start(g, id)
			r.connected("every client connected after restarting "+id, all)
			restarted++
		}
	}
	r.mu.Lock()
	r.step = "after"
	r.mu.Unlock()
	endBots()
	botFigures := <-botsDone
	if botFigures.Drops != 0 || botFigures.Moves == 0 {
		t.Errorf("bots: %d connections dropped, %d moves; want none dropped, some moved", botFigures.Drops, botFigures.Moves)
	}
	t.Logf("bots: %d players, %d joins (%d failed), %d moves, %d dropped; %d messages sent, %d received, %d chat lines",
		botFigures.Players, botFigures.Joins, botFigures.JoinErrors, botFigures.Moves, botFigures.Drops,
		botFigures.Sent, botFigures.Received, botFigures.Chats)
	r.mu.Lock()
	r.bots.Connected = rollBots // gone on purpose: the checks below are the Reconnectors'
	r.mu.Unlock()
	close(stop)
	for _, u := range ups {
		<-u
	}

	var want []string
	for i, u := range uploaders {
		want = append(want, fmt.Sprintf("%s#%d=final-%d", u.Current().Ref().Server, u.Current().Ref().ID, i))
	}
	slices.Sort(want)
	for i, v := range views {
		d.waitFor(fmt.Sprintf("view %d to hold every uploader's final row", i), func() bool {
			return v.Complete() && slices.Equal(viewRows(v), want)
		})
	}
	// The baseline: the client servers killed (SIGKILL) and started
	// again, so that their clients lose their sessions and reconnect.
	r.mu.Lock()
	r.step = killStep
	r.mu.Unlock()
	for i := 1; i <= 2; i++ {
		id := fmt.Sprintf("client-%d", i)
		r.cur[id].Kill()
		r.start("client", id)
		r.connected("every client connected after killing "+id, all)
	}
	r.report(restarted)

	// A client server's drain moves its clients (make before break); the
	// restart of an internal server is not seen by clients at all.
	r.mu.Lock()
	defer r.mu.Unlock()
	for g, fos := range r.fos {
		if g == killStep {
			continue
		}
		for _, f := range fos {
			if g != "client" || f.Reason != protocol.ReasonDraining || f.Err != nil {
				t.Errorf("restart of %s: failover %s → %s, reason %s, err %v; want only Moves from client servers", g, f.From, f.To, f.Reason, f.Err)
			}
		}
	}
	if n := len(r.fos["client"]); n != held {
		t.Errorf("%d failovers while restarting the client servers, want one per client on a draining server (%d)", n, held)
	}
}

// viewRows formats a view's rows as "server#id=data", sorted.
func viewRows(v *client.View) []string {
	var out []string
	for _, row := range v.Rows() {
		out = append(out, fmt.Sprintf("%s#%d=%s", row.Uploader.Server, row.Uploader.ID, row.Data))
	}
	slices.Sort(out)
	return out
}

// report logs the failovers per group restarted: how many, why, and the
// time from the Move (or the loss) to the new welcome.
func (r *rolling) report(restarted int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t.Logf("rolling restart took %s", ms(time.Since(r.began)))
	clients := rollPlayers + rollUploaders + rollWatchers
	r.t.Logf("rolling restart: %d servers restarted one at a time, %d clients (%d players, %d uploaders, %d watchers), 0 lost",
		restarted, clients, rollPlayers, rollUploaders, rollWatchers)
	for _, g := range append(slices.Clone(rollOrder), "after", killStep) {
		fos := r.fos[g]
		if len(fos) == 0 {
			r.t.Logf("  %-7s no failover", g)
			continue
		}
		var ds []time.Duration
		moves := 0
		for _, f := range fos {
			ds = append(ds, f.Duration)
			if f.Reason == protocol.ReasonDraining && f.Err == nil {
				moves++
			}
		}
		slices.Sort(ds)
		r.t.Logf("  %-7s %d failovers (%d by Move), back in p50 %s, p99 %s, max %s",
			g, len(fos), moves, ms(quantile(ds, 0.5)), ms(quantile(ds, 0.99)), ms(ds[len(ds)-1]))
	}
}

// quantile returns the q-quantile of sorted ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(ds))+0.5) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}
