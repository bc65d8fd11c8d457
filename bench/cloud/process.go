package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cloudrift/cloudrift/bench/internal/child"
)

// serveCloudCommand is the child process that runs the cloud system when
// the servers run apart from the clients: "serve-cloud -replicas N
// [-redis ADDR]". It prints "urls" and the client servers' URLs once the
// system answers, and runs until its stdin closes.
const serveCloudCommand = "serve-cloud"

func serveCloud(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(serveCloudCommand, flag.ContinueOnError)
	replicas := fs.Int("replicas", 1, "cloud replicas")
	redisAddr := fs.String("redis", "", "the Redis server of the game plugins (host:port)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rig, err := startCloud(*replicas, *redisAddr)
	if err != nil {
		return err
	}
	defer rig.Close()
	fmt.Fprintf(stdout, "urls %s\n", strings.Join(rig.URLs, " "))
	_, _ = io.Copy(io.Discard, stdin) // until the parent closes it
	return nil
}

// startCloudProcess runs the cloud system in a child process (this same
// binary, with serveCloudCommand) and returns a rig whose Close ends it.
func startCloudProcess(replicas int, redisAddr string) (*cloudRig, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p, err := child.Start(exe, serveCloudCommand, "-replicas", strconv.Itoa(replicas), "-redis", redisAddr)
	if err != nil {
		return nil, fmt.Errorf("the cloud servers' process: %w", err)
	}
	stop := func() { p.Stop(10 * time.Second) }
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	u, err := p.Expect(ctx, "urls")
	if err != nil {
		stop()
		return nil, fmt.Errorf("the cloud servers' process was not ready: %w", err)
	}
	urls := strings.Fields(u)
	if len(urls) != clientServers {
		stop()
		return nil, fmt.Errorf("the cloud servers' process gave %d client servers, want %d", len(urls), clientServers)
	}
	return &cloudRig{Replicas: replicas, URLs: urls, stop: stop, pid: p.PID()}, nil
}
