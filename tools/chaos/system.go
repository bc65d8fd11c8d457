package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/internal/backoff"
	"github.com/cloudrift/cloudrift/internal/consultest"
	"github.com/cloudrift/cloudrift/internal/containertest"
)

// system is the example system running as a compose project of its own,
// with its images, on a user-defined network with a subnet of its own.
type system struct {
	containertest.Project
	sys     *config.System
	root    string // the repository
	dir     string // temporary files of the run
	images  []string
	network string // the project's network, as Docker names it
	consul  string // consul1's HTTP API on loopback, http://host:port
	want    map[string]int
	log     func(format string, args ...any)
}

// newSystem prepares a project of a unique name; nothing runs yet.
func newSystem(root string, log func(string, ...any)) (*system, error) {
	secret := randomHex(16)
	file := filepath.Join(root, "deploy", "cluster.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	sys, err := config.Parse(file, data, func(name string) (string, bool) {
		if name == "CLOUDRIFT_SECRET" {
			return secret, true
		}
		return os.LookupEnv(name)
	})
	if err != nil {
		return nil, err
	}
	consulBin, err := consultest.Binary()
	if err != nil {
		return nil, err
	}
	suffix := randomHex(4)
	dir, err := os.MkdirTemp("", "cloudrift-chaos-")
	if err != nil {
		return nil, err
	}
	s := &system{sys: sys, root: root, dir: dir, log: log, want: map[string]int{}}
	image, consulImage := "cloudrift-chaos:"+suffix, "cloudrift-consul-chaos:"+suffix
	s.images = []string{image, consulImage}
	s.Name = "chaos" + suffix
	s.network = s.Name + "_cloudrift"
	s.Files = []string{filepath.Join(root, "deploy", "compose", "docker-compose.yml"), filepath.Join(dir, "chaos.yml")}
	s.Env = []string{
		"CLOUDRIFT_IMAGE=" + image,
		"CONSUL_IMAGE=" + consulImage,
		"CLOUDRIFT_SECRET=" + secret,
		"CONSUL_BIN=" + consulBin,
		"CLIENT_PUBLISH=127.0.0.1::7000",
	}
	for _, g := range sys.Groups {
		s.want[g.Name] = g.Replicas
	}
	return s, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// override is the run's compose file on top of deploy/compose: Consul's
// HTTP API on loopback for the suite, and a subnet for the network, so
// that a partitioned container comes back with its own address.
func override(subnet string) string {
	return fmt.Sprintf(`version: "3.8"
services:
  consul1:
    ports: ["127.0.0.1::8500"]
networks:
  cloudrift:
    ipam:
      config:
        - subnet: %s
`, subnet)
}

// build builds the images: the open-world example's binary, as a studio
// deploys it, and Consul.
func (s *system) build(ctx context.Context) error {
	_, err := s.Run(ctx, filepath.Join(s.root, "deploy", "build.sh"),
		"-p", "./examples/openworld/cmd/openworld", "-t", s.images[0], "-c", s.images[1])
	return err
}

// up starts the project on a free subnet and waits until Consul has a
// leader.
func (s *system) up(ctx context.Context) error {
	var err error
	for try := 0; try < 4; try++ {
		subnet := fmt.Sprintf("10.%d.%d.0/24", 200+try, randByte())
		if err = os.WriteFile(s.Files[1], []byte(override(subnet)), 0o644); err != nil {
			return err
		}
		if _, err = s.Compose(ctx, "up", "-d"); err == nil || !strings.Contains(err.Error(), "overlap") {
			break
		}
		s.Down(ctx)
	}
	if err != nil {
		return err
	}
	return s.waitLeader(ctx, 2*time.Minute)
}

func randByte() int {
	b := make([]byte, 1)
	rand.Read(b)
	return int(b[0])
}

// waitLeader waits until Consul has a leader, finding consul1's port
// again when it does not answer (a restarted container's port changes).
func (s *system) waitLeader(ctx context.Context, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if s.consul != "" && containertest.Leader(s.consul) {
			return nil
		}
		if port, err := s.Compose(ctx, "port", "consul1", "8500"); err == nil && strings.TrimSpace(port) != "" {
			s.consul = "http://" + strings.TrimSpace(port)
		}
		backoff.Sleep(ctx, 500*time.Millisecond)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("no Consul leader within %v", bound)
}

// clientURLs returns the WebSocket URLs of the running client servers, by
// container.
func (s *system) clientURLs(ctx context.Context) (map[string]string, error) {
	ids, err := s.Containers(ctx, "client")
	if err != nil {
		return nil, err
	}
	urls := map[string]string{}
	for _, id := range ids {
		out, err := s.Run(ctx, "docker", "port", id, "7000/tcp")
		if err != nil {
			continue // stopping
		}
		if f := strings.Fields(out); len(f) > 0 {
			urls[id] = "ws://" + f[0] + "/"
		}
	}
	return urls, nil
}

// settled reports what keeps the system from its wanted shape: Consul
// passing and links complete (see containertest.Project.Settled).
func (s *system) settled(ctx context.Context) (string, error) {
	if s.consul == "" || !containertest.Leader(s.consul) {
		if err := s.waitLeader(ctx, 5*time.Second); err != nil {
			return "no Consul leader", nil
		}
	}
	_, missing, err := s.Settled(ctx, s.consul, s.sys, s.want)
	return missing, err
}

// ip returns a container's address on the project's network.
func (s *system) ip(ctx context.Context, id string) (string, error) {
	out, err := s.Run(ctx, "docker", "inspect", "-f", `{{(index .NetworkSettings.Networks "`+s.network+`").IPAddress}}`, id)
	ip := strings.TrimSpace(out)
	if err == nil && ip == "" {
		err = errors.New("no address on " + s.network)
	}
	return ip, err
}

// service returns a container's compose service.
func (s *system) service(ctx context.Context, id string) (string, error) {
	out, err := s.Run(ctx, "docker", "inspect", "-f", `{{index .Config.Labels "com.docker.compose.service"}}`, id)
	return strings.TrimSpace(out), err
}

// cleanup removes everything the run made: containers, networks and
// volumes of the project, the images, and the temporary files. It runs
// on its own context: the run's may have ended.
func (s *system) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, err := range s.Down(ctx) {
		s.log("cleanup: %v", err)
	}
	if _, errOut, err := s.Exec(ctx, "docker", append([]string{"rmi", "-f"}, s.images...)...); err != nil && !strings.Contains(errOut, "No such image") {
		s.log("cleanup: docker rmi: %v\n%s", err, errOut)
	}
	os.RemoveAll(s.dir)
}

// shape describes the wanted replicas: "2 client, 3 world, ...".
func (s *system) shape() string {
	var parts []string
	for _, g := range s.sys.Groups {
		parts = append(parts, fmt.Sprintf("%d %s", s.want[g.Name], g.Name))
	}
	return strings.Join(parts, ", ")
}

// saveLogs writes every container's log to a file that outlives the run
// and returns its path, or why there is none.
func (s *system) saveLogs(ctx context.Context) string {
	out, err := s.Compose(ctx, "logs", "--no-color", "--timestamps")
	if err != nil {
		return err.Error()
	}
	path := filepath.Join(os.TempDir(), s.Name+".log")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		return err.Error()
	}
	return path
}
