package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/cloudrift/cloudrift/bench/internal/child"
)

// serveCloudCommand is the child process that runs the cloud system when
// the servers run apart from the clients: "serve-cloud -replicas N". It
// prints "url ws://..." once the system answers, and runs until its stdin
// closes.
const serveCloudCommand = "serve-cloud"

func serveCloud(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(serveCloudCommand, flag.ContinueOnError)
	replicas := fs.Int("replicas", 1, "cloud replicas")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rig, err := startCloud(*replicas)
	if err != nil {
		return err
	}
	defer rig.Close()
	fmt.Fprintf(stdout, "url %s\n", rig.URL)
	_, _ = io.Copy(io.Discard, stdin) // until the parent closes it
	return nil
}

// startCloudProcess runs the cloud system in a child process (this same
// binary, with serveCloudCommand) and returns a rig whose Close ends it.
func startCloudProcess(replicas int) (*cloudRig, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p, err := child.Start(exe, serveCloudCommand, "-replicas", strconv.Itoa(replicas))
	if err != nil {
		return nil, fmt.Errorf("the cloud servers' process: %w", err)
	}
	stop := func() { p.Stop(10 * time.Second) }
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	u, err := p.Expect(ctx, "url")
	if err != nil {
		stop()
		return nil, fmt.Errorf("the cloud servers' process was not ready: %w", err)
	}
	return &cloudRig{Replicas: replicas, URL: u, stop: stop, pid: p.PID()}, nil
}
