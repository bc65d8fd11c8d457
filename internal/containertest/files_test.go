package containertest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/cli"
	"github.com/cloudrift/cloudrift/config"
)

// deployDir is the repository's deploy directory, relative to this package.
const deployDir = "../../deploy"

// port is the port every replica listens on in deploy/cluster.yaml.
const port = 7000

// loadSystem loads deploy/cluster.yaml, which needs a secret from the
// environment.
func loadSystem(t *testing.T) *config.System {
	t.Helper()
	t.Setenv("CLOUDRIFT_SECRET", "manifest-test-secret-0123456789")
	sys, err := config.Load(filepath.Join(deployDir, "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return sys
}

// TestDeploySystemMatchesRepository holds deploy/cluster.yaml to the
// repository's cluster.yaml: the same system, groups, links, replica counts
// and plugins; only the registry, the listen addresses and the drain
// timeout (which must fit the orchestrators' stop grace) differ.
func TestDeploySystemMatchesRepository(t *testing.T) {
	dep := loadSystem(t)
	repo, err := config.Load("../../cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if dep.System != repo.System {
		t.Errorf("system %q, repository's %q", dep.System, repo.System)
	}
	if dep.Registry.Type != "consul" {
		t.Errorf("registry %q, want consul", dep.Registry.Type)
	}
	if len(dep.Groups) != len(repo.Groups) {
		t.Fatalf("%d groups, repository's file has %d", len(dep.Groups), len(repo.Groups))
	}
	for i, g := range dep.Groups {
		r := repo.Groups[i]
		gc, rc := g.Clients, r.Clients
		gc.Line, rc.Line = 0, 0
		gc.DrainTimeout, rc.DrainTimeout = 0, 0
		if g.Name != r.Name || g.Visibility != r.Visibility || g.Replicas != r.Replicas ||
			!slices.Equal(g.ConnectsTo, r.ConnectsTo) || !reflect.DeepEqual(gc, rc) {
			t.Errorf("group %d: %+v\nrepository's: %+v", i, g, r)
		}
		if len(g.Plugins) != len(r.Plugins) {
			t.Errorf("group %s: %d plugins, repository's %d", g.Name, len(g.Plugins), len(r.Plugins))
			continue
		}
		for j, p := range g.Plugins {
			q := r.Plugins[j]
			var a, b any
			if err := p.Settings.Decode(&a); p.Settings.Kind != 0 && err != nil {
				t.Fatal(err)
			}
			if err := q.Settings.Decode(&b); q.Settings.Kind != 0 && err != nil {
				t.Fatal(err)
			}
			if p.Name != q.Name || !reflect.DeepEqual(a, b) {
				t.Errorf("group %s plugin %d: %s %v, repository's %s %v", g.Name, j, p.Name, a, q.Name, b)
			}
		}
		if g.Listen != "0.0.0.0:7000" {
			t.Errorf("group %s listens on %q, want 0.0.0.0:%d", g.Name, g.Listen, port)
		}
	}
}

// object is the part of a Kubernetes object the test reads.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Strategy struct {
			Type          string `yaml:"type"`
			RollingUpdate struct {
				MaxSurge       any `yaml:"maxSurge"`
				MaxUnavailable any `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
		// Service
		ClusterIP string `yaml:"clusterIP"`
		// PodDisruptionBudget
		MaxUnavailable any `yaml:"maxUnavailable"`
		MinAvailable   any `yaml:"minAvailable"`
	} `yaml:"spec"`
	raw map[string]any
}

type podSpec struct {
	TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot bool `yaml:"runAsNonRoot"`
		RunAsUser    int  `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []struct {
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Env   []struct {
			Name      string         `yaml:"name"`
			Value     string         `yaml:"value"`
			ValueFrom map[string]any `yaml:"valueFrom"`
		} `yaml:"env"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		ReadinessProbe struct {
			HTTPGet struct {
				Path string `yaml:"path"`
				Port any    `yaml:"port"`
			} `yaml:"httpGet"`
		} `yaml:"readinessProbe"`
		Lifecycle struct {
			PreStop struct {
				Sleep struct {
					Seconds int `yaml:"seconds"`
				} `yaml:"sleep"`
			} `yaml:"preStop"`
		} `yaml:"lifecycle"`
	} `yaml:"containers"`
}

// readObjects decodes every document of a manifest file.
func readObjects(t *testing.T, path string) []object {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []object
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var o object
		if err := node.Decode(&o); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if err := node.Decode(&o.raw); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, o)
	}
}

// selector returns a Service's spec.selector.
func (o object) selector() map[string]string {
	spec, _ := o.raw["spec"].(map[string]any)
	sel, _ := spec["selector"].(map[string]any)
	out := map[string]string{}
	for k, v := range sel {
		s, _ := v.(string)
		out[k] = s
	}
	return out
}

// TestKubernetesManifests checks, for every group of deploy/cluster.yaml,
// the Deployment, headless Service and PodDisruptionBudget in
// deploy/kubernetes/GROUP.yaml: replicas as in the system file, a rolling
// update that starts the new replica first, the group and the secret from
// the environment, the pod's address advertised on the listen port, a
// readiness probe on /readyz, a preStop pause, a grace period longer than
// the drain, a non-root user, and selectors that match the pods.
func TestKubernetesManifests(t *testing.T) {
	sys := loadSystem(t)
	dir := filepath.Join(deployDir, "kubernetes")
	for _, g := range sys.Groups {
		t.Run(g.Name, func(t *testing.T) {
			byKind := map[string][]object{}
			for _, o := range readObjects(t, filepath.Join(dir, g.Name+".yaml")) {
				byKind[o.Kind] = append(byKind[o.Kind], o)
			}
			deps := byKind["Deployment"]
			if len(deps) != 1 {
				t.Fatalf("%d Deployments, want 1", len(deps))
			}
			d := deps[0]
			if d.APIVersion != "apps/v1" {
				t.Errorf("Deployment apiVersion %q", d.APIVersion)
			}
			if d.Spec.Replicas == nil {
				t.Errorf("no replicas, system file's %d", g.Replicas)
			} else if *d.Spec.Replicas != g.Replicas {
				t.Errorf("replicas %d, system file's %d", *d.Spec.Replicas, g.Replicas)
			}
			podLabels := d.Spec.Template.Metadata.Labels
			if !matches(d.Spec.Selector.MatchLabels, podLabels) {
				t.Errorf("selector %v does not match the pod labels %v", d.Spec.Selector.MatchLabels, podLabels)
			}
			if d.Spec.Strategy.Type != "RollingUpdate" || d.Spec.Strategy.RollingUpdate.MaxUnavailable != 0 || d.Spec.Strategy.RollingUpdate.MaxSurge != 1 {
				t.Errorf("strategy %+v: want a rolling update, one surge, none unavailable", d.Spec.Strategy)
			}
			pod := d.Spec.Template.Spec
			grace := stopTime(&g) + 5*time.Second
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Containers))
			}
			c := pod.Containers[0]
			if pod.TerminationGracePeriodSeconds == nil ||
				time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second < grace+time.Duration(c.Lifecycle.PreStop.Sleep.Seconds)*time.Second {
				t.Errorf("terminationGracePeriodSeconds %v: want at least the preStop pause + the drain (%v) + 5s", pod.TerminationGracePeriodSeconds, stopTime(&g))
			}
			if !pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.RunAsUser == 0 {
				t.Errorf("securityContext %+v: want a non-root user", pod.SecurityContext)
			}
			if !slices.Equal(c.Args, []string{"run"}) {
				t.Errorf("args %q, want [run]", c.Args)
			}
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
				if e.ValueFrom != nil {
					env[e.Name] = "<from>"
				}
			}
			if env["CLOUDRIFT_GROUP"] != g.Name {
				t.Errorf("CLOUDRIFT_GROUP %q, want %q", env["CLOUDRIFT_GROUP"], g.Name)
			}
			for _, name := range []string{"CLOUDRIFT_SECRET", "POD_IP"} {
				if env[name] != "<from>" {
					t.Errorf("%s is not taken from the cluster (valueFrom)", name)
				}
			}
			if want := "$(POD_IP):7000"; env["CLOUDRIFT_ADVERTISE"] != want {
				t.Errorf("CLOUDRIFT_ADVERTISE %q, want %q", env["CLOUDRIFT_ADVERTISE"], want)
			}
			if env["CONSUL_HTTP_ADDR"] == "" {
				t.Error("no CONSUL_HTTP_ADDR")
			}
			ports := map[string]int{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			if len(c.Ports) != 2 || ports["cloudrift"] != port {
				t.Errorf("ports %+v, want cloudrift %d and ops", c.Ports, port)
			}
			// /readyz is served by the operations port, which must listen
			// on the pod's address for the kubelet to reach it.
			_, opsPort, err := net.SplitHostPort(env["CLOUDRIFT_OPS"])
			if err != nil || opsPort != strconv.Itoa(ports["ops"]) || strings.HasPrefix(env["CLOUDRIFT_OPS"], "127.") {
				t.Errorf("CLOUDRIFT_OPS %q, want a wildcard address on the ops port %d", env["CLOUDRIFT_OPS"], ports["ops"])
			}
			if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.ReadinessProbe.HTTPGet.Port != "ops" {
				t.Errorf("readiness probe %s on %v, want /readyz on ops", c.ReadinessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Port)
			}
			if c.Lifecycle.PreStop.Sleep.Seconds <= 0 {
				t.Error("no preStop pause")
			}

			var headless bool
			for _, s := range byKind["Service"] {
				if !matches(s.selector(), podLabels) {
					t.Errorf("Service %s: selector %v does not match the pods", s.Metadata.Name, s.selector())
				}
				headless = headless || s.Spec.ClusterIP == "None"
			}
			if !headless {
				t.Error("no headless Service (clusterIP: None)")
			}
			pdbs := byKind["PodDisruptionBudget"]
			if len(pdbs) != 1 {
				t.Fatalf("%d PodDisruptionBudgets, want 1", len(pdbs))
			}
			p := pdbs[0]
			if p.APIVersion != "policy/v1" || !matches(p.Spec.Selector.MatchLabels, podLabels) || p.Spec.MaxUnavailable != 1 {
				t.Errorf("PodDisruptionBudget %s: %s, selector %v, maxUnavailable %v; want policy/v1, the pods, 1",
					p.Metadata.Name, p.APIVersion, p.Spec.Selector.MatchLabels, p.Spec.MaxUnavailable)
			}
		})
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".yaml")
		if _, ok := sys.Group(name); !ok && name != "secret" && name != "consul-values" {
			t.Errorf("%s: no group %q in the system file", e.Name(), name)
		}
	}
}

// matches reports whether every label of sel is on labels (and sel is not
// empty, which would select everything).
func matches(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// composeFile is the part of a compose file the test reads.
type composeFile struct {
	Version  string
	Services map[string]struct {
		Image           string
		Command         []string
		Environment     map[string]string
		Networks        []string
		StopGracePeriod string `yaml:"stop_grace_period"`
		Deploy          struct {
			Replicas     *int
			UpdateConfig struct {
				Parallelism   int
				Order         string
				FailureAction string `yaml:"failure_action"`
			} `yaml:"update_config"`
			RestartPolicy struct {
				Condition string
			} `yaml:"restart_policy"`
		}
	}
	Networks map[string]any
}

// stopTime bounds a graceful stop of a server of g: an external group's
// players get clients.drainTimeout to move, then the shutdown gets
// cli.ShutdownTimeout.
func stopTime(g *config.Group) time.Duration {
	if g.Visibility == config.External {
		return g.Clients.DrainTimeout.Duration() + cli.ShutdownTimeout
	}
	return cli.ShutdownTimeout
}

// TestComposeFile holds deploy/compose/docker-compose.yml to the system
// file and to what docker stack deploy needs, with no Docker at hand: a
// service per group with the group's replica count, one update at a time
// (the new replica first), a restart policy, a stop grace period longer
// than the drain, and three Consul servers; every service on the file's
// own network.
func TestComposeFile(t *testing.T) {
	sys := loadSystem(t)
	data, err := os.ReadFile(filepath.Join(deployDir, "compose", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if f.Version != "3.8" {
		t.Errorf("version %q, want 3.8 (docker-compose 1.29, compose v2 and stack deploy all read it)", f.Version)
	}
	if len(f.Networks) != 1 {
		t.Errorf("%d networks, want the file's own", len(f.Networks))
	}
	consuls := 0
	for name, s := range f.Services {
		if len(s.Networks) != 1 || f.Networks[s.Networks[0]] == nil {
			t.Errorf("service %s: networks %q, want the file's network", name, s.Networks)
		}
		if s.Deploy.Replicas == nil {
			t.Errorf("service %s: no deploy.replicas", name)
		}
		if s.Deploy.UpdateConfig.Parallelism != 1 || s.Deploy.RestartPolicy.Condition != "on-failure" {
			t.Errorf("service %s: update parallelism %d, restart %q; want 1, on-failure",
				name, s.Deploy.UpdateConfig.Parallelism, s.Deploy.RestartPolicy.Condition)
		}
		stop := cli.ShutdownTimeout
		if g, ok := sys.Group(name); ok {
			stop = stopTime(g)
		}
		if grace, err := time.ParseDuration(s.StopGracePeriod); err != nil || grace <= stop {
			t.Errorf("service %s: stop_grace_period %q, want longer than the drain (%v)", name, s.StopGracePeriod, stop)
		}
		if strings.HasPrefix(name, "consul") {
			consuls++
			if !strings.HasPrefix(s.Image, "${CONSUL_IMAGE") || !slices.Contains(s.Command, "-bootstrap-expect=3") {
				t.Errorf("service %s: image %q, command %q: want CONSUL_IMAGE, a server of three", name, s.Image, s.Command)
			}
			continue
		}
		g, ok := sys.Group(name)
		if !ok {
			t.Errorf("service %s: no such group in the system file", name)
			continue
		}
		if s.Environment["CLOUDRIFT_GROUP"] != name || !strings.HasPrefix(s.Environment["CLOUDRIFT_SECRET"], "${CLOUDRIFT_SECRET:?") ||
			!strings.HasPrefix(s.Environment["CONSUL_HTTP_ADDR"], "consul") {
			t.Errorf("service %s: environment %v: want its group, the required secret and one Consul server", name, s.Environment)
		}
		if s.Deploy.Replicas != nil && *s.Deploy.Replicas != g.Replicas {
			t.Errorf("service %s: %d replicas, system file's %d", name, *s.Deploy.Replicas, g.Replicas)
		}
		if s.Deploy.UpdateConfig.Order != "start-first" || s.Deploy.UpdateConfig.FailureAction != "rollback" {
			t.Errorf("service %s: update order %q, failure action %q; want start-first, rollback",
				name, s.Deploy.UpdateConfig.Order, s.Deploy.UpdateConfig.FailureAction)
		}
	}
	for _, g := range sys.Groups {
		if _, ok := f.Services[g.Name]; !ok {
			t.Errorf("group %s has no service", g.Name)
		}
	}
	if consuls != 3 {
		t.Errorf("%d Consul servers, want 3", consuls)
	}
}
