package consultest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// ClusterSize is how many Consul servers StartCluster runs.
const ClusterSize = 3

// Cluster is three Consul servers (not dev agents) forming one datacenter
// with bootstrap_expect = 3, each on a loopback address of its own
// (127.0.0.2, 127.0.0.3, 127.0.0.4) with the same port numbers, its data
// on disk. There are no client agents: a program registers directly
// against one server's HTTP API (Server(i).Addr()), and its registrations
// live on that server's node, so losing another server loses none of
// them. Losing one server of three keeps a quorum; losing the leader
// elects another.
type Cluster struct {
	t       testing.TB
	servers []*Agent
}

// peer is what makes an Agent a cluster server.
type peer struct {
	host  string
	node  string
	data  string
	join  []string // serf LAN addresses of the other servers
	index int
}

func (p *peer) args() []string {
	args := []string{"agent", "-server", "-bootstrap-expect", strconv.Itoa(ClusterSize),
		"-node", p.node, "-data-dir", p.data,
		// Raft timing of a production LAN (multiplier 1), not the
		// development default of 5: a lost leader is replaced in seconds.
		"-hcl", "performance { raft_multiplier = 1 }"}
	for _, j := range p.join {
		args = append(args, "-retry-join", j)
	}
	return args
}

// StartCluster starts the three servers, waits until they have elected a
// leader and each answers, and registers a cleanup that stops them. It
// skips or fails as Start does without a consul binary.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("consultest: %v (CI=true)", err)
		}
		t.Skipf("consultest: %v; build it with `bash tools/consul/build.sh` or set %s", err, EnvBinary)
	}
	hosts := make([]string, ClusterSize)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("127.0.0.%d", i+2)
	}
	dir := t.TempDir()
	var last error
	for try := 0; try < startTries; try++ {
		p, err := freePortsOn(hosts, 4)
		if err != nil {
			t.Fatalf("consultest: free ports on %v: %v", hosts, err)
		}
		c := &Cluster{t: t}
		for i, h := range hosts {
			pr := &peer{host: h, node: fmt.Sprintf("server-%d", i+1), index: i,
				data: filepath.Join(dir, fmt.Sprintf("try%d-server-%d", try, i+1))}
			for j, o := range hosts {
				if j != i {
					pr.join = append(pr.join, net.JoinHostPort(o, strconv.Itoa(p[1])))
				}
			}
			c.servers = append(c.servers, &Agent{t: t, bin: bin, dir: dir, peer: pr,
				ports: ports{http: p[0], serfLAN: p[1], serfWAN: p[2], server: p[3]}})
		}
		if last = c.start(); last == nil {
			t.Cleanup(func() {
				for _, a := range c.servers {
					a.Stop()
				}
				if t.Failed() {
					t.Logf("consultest: cluster logs are in %s", dir)
				}
			})
			return c
		}
		for _, a := range c.servers {
			a.Kill()
		}
	}
	t.Fatalf("consultest: start a cluster of %d servers (%d attempts): %v", ClusterSize, startTries, last)
	return nil
}

// start launches every server, then waits for each to be ready: none can
// elect a leader alone.
func (c *Cluster) start() error {
	type launched struct {
		done chan struct{}
		log  string
	}
	var ls []launched
	for _, a := range c.servers {
		done, log, err := a.launch()
		if err != nil {
			return err
		}
		ls = append(ls, launched{done, log})
	}
	for i, a := range c.servers {
		if err := a.ready(ls[i].done, ls[i].log); err != nil {
			return fmt.Errorf("%s: %w", a.peer.node, err)
		}
	}
	return nil
}

// Server returns server i (0 to ClusterSize-1).
func (c *Cluster) Server(i int) *Agent { return c.servers[i] }

// Leader returns the index of the server that is the Raft leader, as
// server from sees it, or -1 when it knows none.
func (c *Cluster) Leader(from int) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var leader string
	if err := getJSON(ctx, client, "http://"+c.servers[from].Addr()+"/v1/status/leader", "", &leader); err != nil {
		return -1
	}
	host, _, err := net.SplitHostPort(leader)
	if err != nil {
		return -1
	}
	for i, a := range c.servers {
		if a.peer.host == host {
			return i
		}
	}
	return -1
}
