package containertest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/consultest"
)

// patience bounds each wait of the Docker test: Consul servers electing a
// leader, and replicas restarted until their agent answers, on a loaded
// machine.
const patience = 2 * time.Minute

// requireDocker skips the test when docker, docker-compose or a Consul
// binary is missing, unless CI=true, when it fails. It returns the Consul
// binary.
func requireDocker(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds images and runs a dozen containers")
	}
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	for _, tool := range []string{"docker", "docker-compose"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing("%s is not on PATH", tool)
		}
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		missing("docker engine: %v: %s", err, out)
	}
	bin, err := consultest.Binary()
	if err != nil {
		missing("%v", err)
	}
	return bin
}

// project is one compose project of the test, with its images.
type project struct {
	t      *testing.T
	name   string
	files  []string
	env    []string
	consul string // Consul's HTTP API on 127.0.0.1, http://host:port
}

// run runs a command and returns its standard output, failing the test
// with both outputs when it fails.
func (p *project) run(name string, args ...string) string {
	p.t.Helper()
	out, errOut, err := p.exec(name, args...)
	if err != nil {
		p.t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// exec runs a command with the project's environment; docker-compose
// writes warnings to stderr, which never mix into the output.
func (p *project) exec(name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), p.env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// compose runs docker-compose on the project's files.
func (p *project) compose(args ...string) string {
	p.t.Helper()
	full := []string{"-p", p.name}
	for _, f := range p.files {
		full = append(full, "-f", f)
	}
	return p.run("docker-compose", append(full, args...)...)
}

// containers returns the IDs of the running containers of a service.
func (p *project) containers(service string) []string {
	p.t.Helper()
	out := p.run("docker", "ps", "-q", "--no-trunc",
		"--filter", "label=com.docker.compose.project="+p.name,
		"--filter", "label=com.docker.compose.service="+service)
	return strings.Fields(out)
}

// member is a registration in Consul, as its health endpoint shows it.
type member struct {
	ID      string
	Address string
	Passing bool
}

// members returns the registrations of a group; nil when Consul does not
// answer yet.
func (p *project) members(sys *config.System, group string) []member {
	url := fmt.Sprintf("%s/v1/health/service/cloudrift-%s-%s", p.consul, sys.System, group)
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	var entries []struct {
		Service struct {
			ID      string
			Address string
			Port    int
		}
		Checks []struct{ Status string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&entries); err != nil {
		return nil
	}
	var out []member
	for _, e := range entries {
		m := member{ID: strings.TrimPrefix(e.Service.ID, sys.System+":"), Address: fmt.Sprintf("%s:%d", e.Service.Address, e.Service.Port), Passing: true}
		for _, c := range e.Checks {
			m.Passing = m.Passing && c.Status == "passing"
		}
		out = append(out, m)
	}
	return out
}

// links reads a container's JSON log and returns the server's ID and the
// peers it holds an upstream link to (every "link up" not followed by a
// "link down" of the same peer).
func (p *project) links(container string) (id string, peers []string) {
	p.t.Helper()
	// The servers log to stderr. A restarted container's log holds its
	// earlier runs too.
	_, out, _ := p.exec("docker", "logs", container)
	up := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev struct {
			Message   string `json:"message"`
			Server    string `json:"server"`
			Peer      string `json:"peer"`
			Direction string `json:"direction"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Peer == "" || ev.Direction != "upstream" {
			continue
		}
		if ev.Server != id {
			id, up = ev.Server, map[string]bool{}
		}
		switch ev.Message {
		case "link up":
			up[ev.Peer] = true
		case "link down":
			delete(up, ev.Peer)
		}
	}
	for peer := range up {
		peers = append(peers, peer)
	}
	slices.Sort(peers)
	return id, peers
}

// settled reports whether every group has want[group] passing members,
// and every server of a group that dials others holds a link to every
// passing member of the groups it dials. It returns the passing IDs by
// group, and what is missing.
func (p *project) settled(sys *config.System, want map[string]int) (map[string][]string, string) {
	p.t.Helper()
	passing := map[string][]string{}
	for _, g := range sys.Groups {
		for _, m := range p.members(sys, g.Name) {
			if host, port, err := net.SplitHostPort(m.Address); err != nil || port != "7000" ||
				net.ParseIP(host) == nil || net.ParseIP(host).IsLoopback() || net.ParseIP(host).IsUnspecified() {
				p.t.Fatalf("%s registered %s: want the container's own address, port 7000 (-advertise auto)", m.ID, m.Address)
			}
			if m.Passing {
				passing[g.Name] = append(passing[g.Name], m.ID)
			}
		}
		slices.Sort(passing[g.Name])
		if len(passing[g.Name]) != want[g.Name] {
			return nil, fmt.Sprintf("group %s: %d passing in Consul, want %d", g.Name, len(passing[g.Name]), want[g.Name])
		}
	}
	for _, g := range sys.Groups {
		if len(g.ConnectsTo) == 0 {
			continue
		}
		var upstream []string
		for _, to := range g.ConnectsTo {
			upstream = append(upstream, passing[to]...)
		}
		slices.Sort(upstream)
		seen := 0
		for _, c := range p.containers(g.Name) {
			id, peers := p.links(c)
			if !slices.Contains(passing[g.Name], id) {
				continue // not registered yet, or an earlier run of a restarted container
			}
			seen++
			if !slices.Equal(peers, upstream) {
				return nil, fmt.Sprintf("%s links to %v, want %v", id, peers, upstream)
			}
		}
		if seen != want[g.Name] {
			return nil, fmt.Sprintf("group %s: %d of %d servers logged their links", g.Name, seen, want[g.Name])
		}
	}
	return passing, ""
}

// waitLeader waits until the Consul servers have elected a leader.
func (p *project) waitLeader() {
	p.t.Helper()
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		resp, err := http.Get(p.consul + "/v1/status/leader")
		if err == nil {
			var leader string
			err = json.NewDecoder(resp.Body).Decode(&leader)
			resp.Body.Close()
			if err == nil && leader != "" {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.t.Fatalf("no Consul leader after %v\n%s", patience, p.compose("logs", "--no-color", "--tail", "10", "consul1"))
}

// waitSettled waits until settled holds and returns the passing IDs by
// group.
func (p *project) waitSettled(sys *config.System, want map[string]int) map[string][]string {
	p.t.Helper()
	deadline := time.Now().Add(patience)
	var last string
	for time.Now().Before(deadline) {
		passing, missing := p.settled(sys, want)
		if missing == "" {
			return passing
		}
		last = missing
		time.Sleep(time.Second)
	}
	p.t.Fatalf("not settled after %v: %s\n%s\n%s", patience, last, p.compose("ps"), p.compose("logs", "--no-color", "--tail", "10"))
	return nil
}

// TestComposeUpAndScale builds the images (of the open-world example's
// own binary, and of Consul), brings deploy/compose up as a
// project of its own, waits until every server of every group is passing
// in Consul and linked to every server it dials, scales world up while it
// runs, and waits until the new world servers are linked too, the others
// untouched.
func TestComposeUpAndScale(t *testing.T) {
	consulBin := requireDocker(t)
	sys := loadSystem(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	image := "cloudrift-containertest:" + suffix
	consulImage := "cloudrift-consul-containertest:" + suffix
	secret := make([]byte, 16)
	rand.Read(secret)

	override := filepath.Join(t.TempDir(), "test.yml")
	// Consul's HTTP API, for the test only, on a free port of loopback.
	if err := os.WriteFile(override, []byte("version: \"3.8\"\nservices:\n  consul1:\n    ports: [\"127.0.0.1::8500\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &project{
		t:     t,
		name:  "crtest" + suffix,
		files: []string{filepath.Join(root, "deploy/compose/docker-compose.yml"), override},
		env: []string{
			"CLOUDRIFT_IMAGE=" + image,
			"CONSUL_IMAGE=" + consulImage,
			"CLOUDRIFT_SECRET=" + hex.EncodeToString(secret),
			"CONSUL_BIN=" + consulBin,
		},
	}

	// Cleanups run last-registered first: the project goes, then the images.
	t.Cleanup(func() {
		if _, errOut, err := p.exec("docker", "rmi", "-f", image, consulImage); err != nil && !strings.Contains(errOut, "No such image") {
			t.Logf("docker rmi: %v\n%s", err, errOut)
		}
	})
	start := time.Now()
	// A studio's binary, as a studio deploys it (the stock one differs only
	// in its package).
	p.run(filepath.Join(root, "deploy/build.sh"), "-p", "./examples/openworld/cmd/openworld", "-t", image, "-c", consulImage)
	t.Logf("images built in %v", time.Since(start).Round(time.Millisecond))

	t.Cleanup(func() { p.down() })
	start = time.Now()
	p.compose("up", "-d")
	want := map[string]int{}
	for _, g := range sys.Groups {
		want[g.Name] = g.Replicas
		if n := len(p.containers(g.Name)); n != g.Replicas {
			t.Errorf("group %s: %d containers after up, want the system file's %d", g.Name, n, g.Replicas)
		}
	}
	port := strings.TrimSpace(p.compose("port", "consul1", "8500"))
	p.consul = "http://" + port
	p.waitLeader()
	t.Logf("up: Consul has a leader %v after docker-compose up", time.Since(start).Round(time.Millisecond))
	before := p.waitSettled(sys, want)
	t.Logf("up: every server passing and linked %v after docker-compose up", time.Since(start).Round(time.Millisecond))

	const scaled = 5
	world, _ := sys.Group("world")
	start = time.Now()
	p.compose("up", "-d", "--no-recreate", "--scale", fmt.Sprintf("world=%d", scaled))
	want["world"] = scaled
	after := p.waitSettled(sys, want)
	t.Logf("scale world %d -> %d: new servers passing and linked %v after the command", world.Replicas, scaled, time.Since(start).Round(time.Millisecond))
	for group, ids := range before {
		for _, id := range ids {
			if !slices.Contains(after[group], id) {
				t.Errorf("%s (%s) is gone after scaling world", id, group)
			}
		}
	}

	// "cloudrift status" in a container of the image sees them all.
	status := p.compose("run", "--rm", "--no-deps", "-e", "CONSUL_HTTP_ADDR=consul1:8500", "world", "status")
	for group, ids := range after {
		for _, id := range ids {
			if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(id) + ` .* passing$`).MatchString(status) {
				t.Errorf("status does not list %s (%s) as passing:\n%s", id, group, status)
			}
		}
	}
}

// down removes the project's containers, networks and volumes, with
// docker-compose and then by label, should compose have missed any.
func (p *project) down() {
	args := []string{"-p", p.name}
	for _, f := range p.files {
		args = append(args, "-f", f)
	}
	args = append(args, "down", "-v", "--remove-orphans", "-t", "5")
	if _, errOut, err := p.exec("docker-compose", args...); err != nil {
		p.t.Logf("docker-compose down: %v\n%s", err, errOut)
	}
	label := "label=com.docker.compose.project=" + p.name
	for _, c := range []struct{ list, rm []string }{
		{[]string{"container", "ls", "-a"}, []string{"container", "rm", "-f", "-v"}},
		{[]string{"network", "ls"}, []string{"network", "rm"}},
		{[]string{"volume", "ls"}, []string{"volume", "rm", "-f"}},
	} {
		out, _, _ := p.exec("docker", append(c.list, "-q", "--filter", label)...)
		if ids := strings.Fields(out); len(ids) > 0 {
			rm := append(c.rm, ids...)
			if _, errOut, err := p.exec("docker", rm...); err != nil {
				p.t.Logf("docker %s: %v\n%s", strings.Join(rm, " "), err, errOut)
			}
		}
	}
}
