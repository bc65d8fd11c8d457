package containertest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/cloudrift/cloudrift/config"
)

// ErrBadAddress is wrapped by Settled when a server registered an address
// its peers cannot dial: not the container's own address and port 7000.
var ErrBadAddress = errors.New("containertest: registered address is not the container's own")

// commandTimeout bounds every docker and docker-compose command.
const commandTimeout = 5 * time.Minute

// Project is one docker-compose project: its name, compose files and the
// environment its commands run with. The zero value is not usable: Name
// and Files are required.
type Project struct {
	Name  string
	Files []string // compose files, in -f order
	Env   []string // added to the process environment, KEY=value
}

// Exec runs a command with the project's environment and returns its
// standard output and standard error apart (docker-compose writes warnings
// to stderr, which never mix into the output). Each command is bounded by
// five minutes as well as ctx.
func (p *Project) Exec(ctx context.Context, name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), p.Env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// Run is Exec whose error carries the command and both outputs.
func (p *Project) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, errOut, err := p.Exec(ctx, name, args...)
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args, " "), err, out, errOut)
	}
	return out, nil
}

// Compose runs docker-compose on the project's files.
func (p *Project) Compose(ctx context.Context, args ...string) (string, error) {
	return p.Run(ctx, "docker-compose", p.composeArgs(args...)...)
}

func (p *Project) composeArgs(args ...string) []string {
	full := []string{"-p", p.Name}
	for _, f := range p.Files {
		full = append(full, "-f", f)
	}
	return append(full, args...)
}

// Containers returns the full IDs of the running containers of a service.
func (p *Project) Containers(ctx context.Context, service string) ([]string, error) {
	out, err := p.Run(ctx, "docker", "ps", "-q", "--no-trunc",
		"--filter", "label=com.docker.compose.project="+p.Name,
		"--filter", "label=com.docker.compose.service="+service)
	return strings.Fields(out), err
}

// Member is a registration in Consul, as its health endpoint shows it.
type Member struct {
	ID      string
	Address string // host:port
	Passing bool   // every check passing
}

// Members returns the registrations of a group of sys from the Consul HTTP
// API at consul (http://host:port), or why Consul did not answer.
func Members(consul string, sys *config.System, group string) ([]Member, error) {
	url := fmt.Sprintf("%s/v1/health/service/cloudrift-%s-%s", consul, sys.System, group)
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
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
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	var out []Member
	for _, e := range entries {
		m := Member{ID: strings.TrimPrefix(e.Service.ID, sys.System+":"), Address: fmt.Sprintf("%s:%d", e.Service.Address, e.Service.Port), Passing: true}
		for _, c := range e.Checks {
			m.Passing = m.Passing && c.Status == "passing"
		}
		out = append(out, m)
	}
	return out, nil
}

// Links reads a container's JSON log and returns the ID of the server it
// runs now and the peers that server holds an upstream link to (every
// "link up" not followed by a "link down" of the same peer).
func (p *Project) Links(ctx context.Context, container string) (id string, peers []string) {
	// The servers log to stderr. A restarted container's log holds its
	// earlier runs too: a new server ID starts afresh.
	_, out, _ := p.Exec(ctx, "docker", "logs", container)
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
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		if ev.Message == "server starting" && ev.Server != "" {
			id, up = ev.Server, map[string]bool{}
			continue
		}
		if ev.Peer == "" {
			continue
		}
		// "link up" says the direction; "link down" does not, and a peer
		// is linked in one direction only.
		switch {
		case ev.Message == "link up" && ev.Direction == "upstream":
			if ev.Server != id {
				id, up = ev.Server, map[string]bool{}
			}
			up[ev.Peer] = true
		case ev.Message == "link down" && ev.Server == id:
			delete(up, ev.Peer)
		}
	}
	for peer := range up {
		peers = append(peers, peer)
	}
	slices.Sort(peers)
	return id, peers
}

// Settled reports whether every group of sys has want[group] passing
// members in the Consul at consul, and every server of a group that dials
// others holds a link to every passing member of the groups it dials. It
// returns the passing IDs by group, or what is missing. Its error wraps
// ErrBadAddress when a registration is not dialable.
func (p *Project) Settled(ctx context.Context, consul string, sys *config.System, want map[string]int) (map[string][]string, string, error) {
	passing := map[string][]string{}
	for _, g := range sys.Groups {
		members, err := Members(consul, sys, g.Name)
		if err != nil {
			return nil, fmt.Sprintf("Consul does not answer: %v", err), nil
		}
		for _, m := range members {
			if host, port, err := net.SplitHostPort(m.Address); err != nil || port != "7000" ||
				net.ParseIP(host) == nil || net.ParseIP(host).IsLoopback() || net.ParseIP(host).IsUnspecified() {
				return nil, "", fmt.Errorf("%w: %s registered %s", ErrBadAddress, m.ID, m.Address)
			}
			if m.Passing {
				passing[g.Name] = append(passing[g.Name], m.ID)
			}
		}
		slices.Sort(passing[g.Name])
		if len(passing[g.Name]) != want[g.Name] {
			return nil, fmt.Sprintf("group %s: %d passing in Consul, want %d", g.Name, len(passing[g.Name]), want[g.Name]), nil
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
		containers, err := p.Containers(ctx, g.Name)
		if err != nil {
			return nil, "", err
		}
		seen := 0
		for _, c := range containers {
			id, peers := p.Links(ctx, c)
			if !slices.Contains(passing[g.Name], id) {
				continue // not registered yet, or an earlier run of a restarted container
			}
			seen++
			if !slices.Equal(peers, upstream) {
				return nil, fmt.Sprintf("%s links to %v, want %v", id, peers, upstream), nil
			}
		}
		if seen != want[g.Name] {
			return nil, fmt.Sprintf("group %s: %d of %d servers logged their links", g.Name, seen, want[g.Name]), nil
		}
	}
	return passing, "", nil
}

// Leader reports whether the Consul at consul (http://host:port) has
// elected a leader.
func Leader(consul string) bool {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(consul + "/v1/status/leader")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var leader string
	return json.NewDecoder(resp.Body).Decode(&leader) == nil && leader != ""
}

// Down removes the project's containers, networks and volumes, with
// docker-compose and then by label, should compose have missed any. It
// returns what failed; it always tries every step.
func (p *Project) Down(ctx context.Context) []error {
	var errs []error
	if _, err := p.Run(ctx, "docker-compose", p.composeArgs("down", "-v", "--remove-orphans", "-t", "5")...); err != nil {
		errs = append(errs, err)
	}
	label := "label=com.docker.compose.project=" + p.Name
	for _, c := range []struct{ list, rm []string }{
		{[]string{"container", "ls", "-a"}, []string{"container", "rm", "-f", "-v"}},
		{[]string{"network", "ls"}, []string{"network", "rm"}},
		{[]string{"volume", "ls"}, []string{"volume", "rm", "-f"}},
	} {
		out, _, _ := p.Exec(ctx, "docker", append(c.list, "-q", "--filter", label)...)
		if ids := strings.Fields(out); len(ids) > 0 {
			if _, err := p.Run(ctx, "docker", append(c.rm, ids...)...); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// ErrNoDocker is wrapped by DockerMissing's error.
var ErrNoDocker = errors.New("containertest: no docker")

// DockerMissing returns nil when docker and docker-compose are on PATH and
// the Docker engine answers, else what is missing (wrapping ErrNoDocker).
func DockerMissing() error {
	for _, tool := range []string{"docker", "docker-compose"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s is not on PATH", ErrNoDocker, tool)
		}
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		return fmt.Errorf("%w: docker engine: %v: %s", ErrNoDocker, err, out)
	}
	return nil
}
