package containertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/config"
)

// swarmPatience bounds each wait of the Swarm test: the stack converging,
// a rolling update, the stack going away.
const swarmPatience = 3 * time.Minute

// stack is one Swarm stack of the test, deployed from the compose file:
// the project's Name is the stack's, its Env the images and the secret.
type stack struct {
	project
	sys *config.System
}

// label is the filter that selects the stack's objects.
func (s *stack) label() string { return "label=com.docker.stack.namespace=" + s.Name }

// tasks returns the IDs of the running containers of a service of the
// stack.
func (s *stack) tasks(service string) []string {
	out, _, err := s.Exec(context.Background(), "docker", "ps", "-q", "--no-trunc",
		"--filter", "label=com.docker.swarm.service.name="+s.Name+"_"+service,
		"--filter", "status=running")
	if err != nil {
		return nil
	}
	return strings.Fields(out)
}

// replicasMissing returns which services of the stack do not run their
// replicas yet, or "" when every one does.
func (s *stack) replicasMissing(services int) string {
	out, _, err := s.Exec(context.Background(), "docker", "service", "ls", "--filter", s.label(), "--format", "{{.Name}} {{.Replicas}}")
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != services {
		return fmt.Sprintf("%d services, want %d", len(lines), services)
	}
	for _, l := range lines {
		name, replicas, _ := strings.Cut(l, " ")
		running, want, _ := strings.Cut(replicas, "/")
		if running != want || want == "0" {
			return fmt.Sprintf("%s: %s replicas running", name, replicas)
		}
	}
	return ""
}

// passing returns the IDs of the passing servers of a group, as a Consul
// server of the stack sees them, or why it could not ask. Nothing is
// published: the Consul CLI in the agent's own container asks it.
func (s *stack) passing(group string) ([]string, error) {
	agents := s.tasks("consul1")
	if len(agents) == 0 {
		return nil, fmt.Errorf("no consul1 container")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Without a handler, a watch prints its view once: the entries of
	// /v1/health/service.
	out, errOut, err := s.Exec(ctx, "docker", "exec", agents[0], "consul", "watch", "-type=service",
		"-service=cloudrift-"+s.sys.System+"-"+group)
	if err != nil {
		return nil, fmt.Errorf("consul watch: %v: %s", err, errOut)
	}
	var entries []struct {
		Service struct{ ID string }
		Checks  []struct{ Status string }
	}
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		return nil, fmt.Errorf("consul watch: %w", err)
	}
	var ids []string
	for _, e := range entries {
		ok := true
		for _, c := range e.Checks {
			ok = ok && c.Status == "passing"
		}
		if ok {
			ids = append(ids, strings.TrimPrefix(e.Service.ID, s.sys.System+":"))
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// settled returns the passing IDs by group once every group has want
// passing servers in Consul and every server of a group that dials others
// holds a link to each of them, or what is missing.
func (s *stack) settled(want map[string]int) (map[string][]string, string) {
	byGroup := map[string][]string{}
	for _, g := range s.sys.Groups {
		ids, err := s.passing(g.Name)
		if err != nil {
			return nil, err.Error()
		}
		if len(ids) != want[g.Name] {
			return nil, fmt.Sprintf("group %s: %d passing in Consul, want %d", g.Name, len(ids), want[g.Name])
		}
		byGroup[g.Name] = ids
	}
	for _, g := range s.sys.Groups {
		if len(g.ConnectsTo) == 0 {
			continue
		}
		var upstream []string
		for _, to := range g.ConnectsTo {
			upstream = append(upstream, byGroup[to]...)
		}
		slices.Sort(upstream)
		seen := 0
		for _, c := range s.tasks(g.Name) {
			id, peers := s.Links(context.Background(), c)
			if !slices.Contains(byGroup[g.Name], id) {
				continue // not registered yet, or a replaced server draining
			}
			seen++
			if !slices.Equal(peers, upstream) {
				return nil, fmt.Sprintf("%s links to %v, want %v", id, peers, upstream)
			}
		}
		if len(upstream) > 0 && seen != want[g.Name] {
			return nil, fmt.Sprintf("group %s: %d of %d servers logged their links", g.Name, seen, want[g.Name])
		}
	}
	return byGroup, ""
}

// waitServing waits until settled holds, failing the test with the
// stack's tasks when it does not within swarmPatience.
func (s *stack) waitServing(want map[string]int) map[string][]string {
	s.t.Helper()
	deadline := time.Now().Add(swarmPatience)
	var last string
	for time.Now().Before(deadline) {
		byGroup, missing := s.settled(want)
		if missing == "" {
			return byGroup
		}
		last = missing
		time.Sleep(time.Second)
	}
	s.t.Fatalf("not settled after %v: %s\n%s", swarmPatience, last, s.run("docker", "stack", "ps", "--no-trunc", s.Name))
	return nil
}

// remove removes the stack and waits until its containers and networks
// are gone, then removes its volumes. It returns what failed.
func (s *stack) remove() error {
	ctx := context.Background()
	s.Exec(ctx, "docker", "stack", "rm", s.Name)
	deadline := time.Now().Add(swarmPatience)
	for {
		containers, _, _ := s.Exec(ctx, "docker", "ps", "-aq", "--filter", s.label())
		networks, _, _ := s.Exec(ctx, "docker", "network", "ls", "-q", "--filter", s.label())
		if strings.TrimSpace(containers+networks) == "" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stack %s: containers %q and networks %q left %v after docker stack rm", s.Name, containers, networks, swarmPatience)
		}
		time.Sleep(500 * time.Millisecond)
	}
	out, _, _ := s.Exec(ctx, "docker", "volume", "ls", "-q", "--filter", s.label())
	if ids := strings.Fields(out); len(ids) > 0 {
		if _, err := s.Run(ctx, "docker", append([]string{"volume", "rm", "-f"}, ids...)...); err != nil {
			return err
		}
	}
	return nil
}

// joinSwarm makes the Docker engine a Swarm manager for the test: a node
// that is not in a swarm initialises one of its own, and leaves it when
// the test ends. An engine that cannot start a swarm skips the test, even
// under CI: the engine, not the deployment, is missing something.
func joinSwarm(t *testing.T) {
	t.Helper()
	info, err := dockerRun("info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}")
	if err != nil {
		t.Fatal(err)
	}
	switch strings.TrimSpace(info) {
	case "active true":
		return
	case "inactive false":
	default:
		msg := fmt.Sprintf("the Docker engine is in a swarm but not a manager of it (%s)", strings.TrimSpace(info))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// Swarm init creates the bridge of the swarm's containers to the host,
	// and leaving keeps it.
	_, gwErr := dockerRun("network", "inspect", "docker_gwbridge")
	if _, err := dockerRun("swarm", "init", "--advertise-addr", "127.0.0.1"); err != nil {
		if _, err2 := dockerRun("swarm", "init"); err2 != nil {
			t.Skipf("the Docker engine cannot start a swarm: %v\nwithout --advertise-addr: %v", err, err2)
		}
	}
	t.Cleanup(func() {
		if _, err := dockerRun("swarm", "leave", "--force"); err != nil {
			t.Log(err)
			return
		}
		if gwErr != nil {
			if _, err := dockerRun("network", "rm", "docker_gwbridge"); err != nil {
				t.Log(err)
			}
		}
	})
}

// dockerRun runs docker with the process environment.
func dockerRun(args ...string) (string, error) {
	var p Project
	return p.Run(context.Background(), "docker", args...)
}

// images are the images a Docker test builds, under a tag of its own.
type images struct {
	tag string   // random, also the suffix of the test's project name
	env []string // the compose file's, KEY=value
}

// buildImages builds, with deploy/build.sh, an image of the open-world
// example's binary named prefix:TAG and an image of the Consul binary
// named prefix-consul:TAG, TAG random, and removes them when the test
// ends. The environment it returns is what the compose file needs: the
// two images and a fresh secret.
func buildImages(t *testing.T, root, prefix, consulBin string) images {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	tag := hex.EncodeToString(b[:])
	image, consulImage := prefix+":"+tag, prefix+"-consul:"+tag
	secret := make([]byte, 16)
	rand.Read(secret)
	p := Project{Env: []string{"CONSUL_BIN=" + consulBin}}
	t.Cleanup(func() {
		if _, errOut, err := p.Exec(context.Background(), "docker", "rmi", "-f", image, consulImage); err != nil && !strings.Contains(errOut, "No such image") {
			t.Logf("docker rmi: %v\n%s", err, errOut)
		}
	})
	start := time.Now()
	// A studio's binary, as a studio deploys it (the stock one differs only
	// in its package).
	if _, err := p.Run(context.Background(), filepath.Join(root, "deploy/build.sh"), "-p", "./examples/openworld/cmd/openworld", "-t", image, "-c", consulImage); err != nil {
		t.Fatal(err)
	}
	t.Logf("images built in %v", time.Since(start).Round(time.Millisecond))
	return images{tag: tag, env: []string{
		"CLOUDRIFT_IMAGE=" + image,
		"CONSUL_IMAGE=" + consulImage,
		"CLOUDRIFT_SECRET=" + hex.EncodeToString(secret),
	}}
}

// TestSwarmStack deploys deploy/compose with "docker stack deploy" on a
// single-node Swarm, images built under a unique tag and used from the
// local engine, waits until every service runs its replicas and every
// server is passing in Consul and linked to the servers it dials, then
// forces a rolling update of world and checks it follows the file's
// update_config (one replica at a time, the new one started first, so
// never fewer running than the replica count) and that the new world
// servers replace the old ones in Consul and in their peers' links. It
// removes the stack, its volumes and its images when it ends, passed or
// failed.
func TestSwarmStack(t *testing.T) {
	consulBin := requireDocker(t)
	sys := loadSystem(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	joinSwarm(t)

	// Cleanups run last-registered first: the stack goes, then the images,
	// then the swarm.
	img := buildImages(t, root, "cloudrift-swarmtest", consulBin)
	s := &stack{sys: sys, project: project{t: t, Project: Project{
		Name:  "crswarm" + img.tag,
		Files: []string{filepath.Join(root, "deploy/compose/docker-compose.yml")},
		Env:   img.env,
	}}}
	t.Cleanup(func() {
		if err := s.remove(); err != nil {
			t.Error(err)
		}
	})
	start := time.Now()
	// The images are the local engine's: Swarm warns it cannot resolve
	// their digests in a registry and runs them as tagged.
	s.run("docker", "stack", "deploy", "-c", s.Files[0], s.Name)
	services := 3 // Consul servers
	want := map[string]int{}
	for _, g := range sys.Groups {
		want[g.Name] = g.Replicas
		services++
	}
	deadline := time.Now().Add(swarmPatience)
	for missing := s.replicasMissing(services); missing != ""; missing = s.replicasMissing(services) {
		if time.Now().After(deadline) {
			t.Fatalf("not every replica running after %v: %s\n%s", swarmPatience, missing, s.run("docker", "stack", "ps", "--no-trunc", s.Name))
		}
		time.Sleep(time.Second)
	}
	t.Logf("deploy: every service runs its replicas %v after docker stack deploy", time.Since(start).Round(time.Millisecond))
	before := s.waitServing(want)
	t.Logf("deploy: every server passing and linked %v after docker stack deploy", time.Since(start).Round(time.Millisecond))

	world := s.Name + "_world"
	var cfg struct {
		Parallelism int
		Order       string
	}
	if err := json.Unmarshal([]byte(s.run("docker", "service", "inspect", "--format", "{{json .Spec.UpdateConfig}}", world)), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Parallelism != 1 || cfg.Order != "start-first" {
		t.Fatalf("world's update_config %+v: want one at a time, start-first", cfg)
	}

	// Count world's running containers while the update runs: start-first
	// means one more than the replicas at times, and never fewer.
	lo, hi := want["world"], 0
	done := make(chan struct{})
	var sampled sync.WaitGroup
	sampled.Add(1)
	go func() {
		defer sampled.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if n := len(s.tasks("world")); n > 0 {
				lo, hi = min(lo, n), max(hi, n)
			}
		}
	}()
	start = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), swarmPatience)
	_, err = s.Run(ctx, "docker", "service", "update", "--force", "--detach=false", world)
	cancel()
	close(done)
	sampled.Wait()
	if err != nil {
		t.Fatal(err)
	}
	for state := ""; state != "completed"; {
		if time.Since(start) > swarmPatience {
			t.Fatalf("world's update %s after %v", state, swarmPatience)
		}
		time.Sleep(500 * time.Millisecond)
		state = strings.TrimSpace(s.run("docker", "service", "inspect", "--format", "{{.UpdateStatus.State}}", world))
	}
	t.Logf("rolling update of world: completed %v after docker service update; %d to %d containers running meanwhile", time.Since(start).Round(time.Millisecond), lo, hi)
	if lo < want["world"] || hi != want["world"]+1 {
		t.Errorf("world ran %d to %d containers during the update, want %d to %d (one at a time, start-first)", lo, hi, want["world"], want["world"]+1)
	}
	after := s.waitServing(want)
	t.Logf("rolling update of world: new servers passing and linked %v after docker service update", time.Since(start).Round(time.Millisecond))
	for _, id := range after["world"] {
		if slices.Contains(before["world"], id) {
			t.Errorf("world server %s survived the rolling update", id)
		}
	}
	for group, ids := range before {
		if group != "world" && !slices.Equal(ids, after[group]) {
			t.Errorf("group %s: %v before the update of world, %v after", group, ids, after[group])
		}
	}

	start = time.Now()
	if err := s.remove(); err != nil {
		t.Fatal(err)
	}
	t.Logf("docker stack rm: containers, networks and volumes gone in %v", time.Since(start).Round(time.Millisecond))
}
