// Command chaos runs the example open world in Docker and disrupts it one
// event at a time while players and cloud-memory uploaders stay connected,
// checking after each event that the system became consistent again:
//
//	go run ./tools/chaos                       # every event (two to three minutes)
//	go run ./tools/chaos -short                # one event of each kind
//	go run ./tools/chaos -events 'kill client,pause cloud'
//	go run ./tools/chaos -large                # scaled out, up to 2,000 bots (see large.go)
//
// It builds the images (deploy/build.sh, the open-world binary), starts
// deploy/compose as a project of its own (three Consul servers, 2 client,
// 3 world, 1 social and 3 cloud servers) on a network of its own, and
// runs players and uploaders from the host through the client servers'
// ports on loopback. The events: scaling world and cloud up and down,
// SIGKILL of a server of each group, a network partition of a world and
// of a cloud server, a paused cloud server, a Consul server killed and
// Consul servers restarted, and a rolling restart of every group.
//
// After each event it waits until every server is passing in Consul and
// linked to every server it dials, every player and uploader is
// connected, each uploader's rows are present exactly once with their
// latest value in a fresh Get through every client server, and every
// View equals that Get. Invariants: no connection to a client server the
// event did not kill or restart drops; the connections of one it did are
// back within a bound (on another client server); the system is
// consistent within a bound. It prints a table of figures per event and
// exits 1 when an invariant did not hold, with the event and the
// evidence (every server's log is saved in the temporary directory), and
// 2 when the run itself failed (no docker, a build or docker command). Everything it made (containers, network, volumes, images) is
// removed when it ends, also on failure or interrupt.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	short := flag.Bool("short", false, "run one event of each kind")
	list := flag.String("events", "", "run only these events, comma-separated")
	players := flag.Int("players", 8, "open-world players kept connected")
	uploaders := flag.Int("uploaders", 4, "cloud-memory uploaders kept connected")
	settle := flag.Duration("settle", 2*time.Minute, "how long the system may take to be consistent after an event")
	reconnect := flag.Duration("reconnect", 30*time.Second, "how long a dropped connection may take to return")
	large := flag.Bool("large", false, "scale the system out and hold as many bots as it takes (no events)")
	bots := flag.Int("bots", 2000, "with -large: the most bots tried; a level that does not hold is halved, down to a quarter")
	ramp := flag.Duration("ramp", time.Minute, "with -large: how long the bots take to join")
	hold := flag.Duration("hold", time.Minute, "with -large: how long the bots stay once joined")
	flag.Parse()

	if *large {
		os.Exit(mainLarge(LargeOptions{Bots: []int{*bots, *bots / 2, *bots / 4}, Ramp: *ramp, Hold: *hold, Log: logf}))
	}
	opts := Options{Players: *players, Uploaders: *uploaders, Settle: *settle, Reconnect: *reconnect, Log: logf}
	switch {
	case *list != "":
		evs, err := eventsByName(*list)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			os.Exit(2)
		}
		opts.Events = evs
	case *short:
		opts.Events = shortEvents()
	}
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	// An interrupt ends the run; the cleanup still runs.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	stats, err := run(ctx, root, opts)
	printTable(os.Stdout, stats)
	fmt.Printf("\n%d events in %v\n", len(stats), since(start))
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		if errors.Is(err, ErrViolated) {
			os.Exit(1)
		}
		os.Exit(2)
	}
}

// mainLarge runs a large run and returns the exit status: 2 when the run
// itself failed, 0 otherwise (a level that did not hold is a figure).
func mainLarge(o LargeOptions) int {
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	levels, shape, err := runLarge(ctx, root, o)
	printLarge(os.Stdout, shape, levels)
	fmt.Printf("\n%d levels in %v\n", len(levels), since(start))
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	return 0
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// repoRoot returns the repository: the nearest directory above the
// working directory that holds deploy/compose.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "deploy", "compose", "docker-compose.yml")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the repository (no deploy/compose above the working directory)")
		}
		dir = parent
	}
}
