package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
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
	cmd := exec.Command(exe, serveCloudCommand, "-replicas", strconv.Itoa(replicas))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the cloud servers' process: %w", err)
	}
	stop := func() {
		stdin.Close()
		done := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "url "); ok {
				urls <- u
			}
		}
		close(urls)
	}()
	select {
	case u, ok := <-urls:
		if !ok {
			stop()
			return nil, errors.New("the cloud servers' process ended before it was ready")
		}
		return &cloudRig{Replicas: replicas, URL: u, stop: stop, pid: cmd.Process.Pid}, nil
	case <-time.After(60 * time.Second):
		stop()
		return nil, errors.New("the cloud servers' process was not ready in 60s")
	}
}
