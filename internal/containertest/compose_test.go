package containertest

import (
	"context"
	"fmt"
	"os"
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
	if err := DockerMissing(); err != nil {
		missing("%v", err)
	}
	bin, err := consultest.Binary()
	if err != nil {
		missing("%v", err)
	}
	return bin
}

// project is one compose project of the test, with its images.
type project struct {
	Project
	t      *testing.T
	consul string // Consul's HTTP API on 127.0.0.1, http://host:port
}

// run runs a command and returns its standard output, failing the test
// with both outputs when it fails.
func (p *project) run(name string, args ...string) string {
	p.t.Helper()
	out, err := p.Run(context.Background(), name, args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

// compose runs docker-compose on the project's files.
func (p *project) compose(args ...string) string {
	p.t.Helper()
	out, err := p.Compose(context.Background(), args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

// containers returns the IDs of the running containers of a service.
func (p *project) containers(service string) []string {
	p.t.Helper()
	ids, err := p.Containers(context.Background(), service)
	if err != nil {
		p.t.Fatal(err)
	}
	return ids
}

// waitLeader waits until the Consul servers have elected a leader.
func (p *project) waitLeader() {
	p.t.Helper()
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		if Leader(p.consul) {
			return
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
		passing, missing, err := p.Settled(context.Background(), p.consul, sys, want)
		if err != nil {
			p.t.Fatalf("%v (want -advertise auto)", err)
		}
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
	// Cleanups run last-registered first: the project goes, then the images.
	img := buildImages(t, root, "cloudrift-containertest", consulBin)

	override := filepath.Join(t.TempDir(), "test.yml")
	// Consul's HTTP API, for the test only, on a free port of loopback.
	if err := os.WriteFile(override, []byte("version: \"3.8\"\nservices:\n  consul1:\n    ports: [\"127.0.0.1::8500\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &project{t: t, Project: Project{
		Name:  "crtest" + img.tag,
		Files: []string{filepath.Join(root, "deploy/compose/docker-compose.yml"), override},
		Env:   append(img.env, "CLIENT_PUBLISH=127.0.0.1::7000"),
	}}
	t.Cleanup(func() { p.down() })
	start := time.Now()
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

// down removes the project's containers, networks and volumes.
func (p *project) down() {
	for _, err := range p.Down(context.Background()) {
		p.t.Log(err)
	}
}
