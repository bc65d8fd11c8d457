package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloudrift/cloudrift/bench/internal/child"
)

// errNoRedis is returned when redis-server is not installed.
var errNoRedis = errors.New("redis-server not found: install it (apt-get install redis-server)")

// redisServer is a redis-server process this benchmark started, on a free
// loopback port, with no persistence.
type redisServer struct {
	Addr    string
	Version string
	cmd     *exec.Cmd
	out     bytes.Buffer
}

// startRedis starts redis-server and waits until it answers PING.
func startRedis() (*redisServer, error) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errNoRedis
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &redisServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	s.cmd = exec.Command(path,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", // no persistence
		"--protected-mode", "no", "--daemonize", "no",
		"--maxclients", "10000", "--loglevel", "warning",
		"--client-output-buffer-limit", "pubsub 0 0 0")
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	c := s.client(1)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := c.Info(ctx, "server").Result()
		cancel()
		if err == nil {
			for _, line := range strings.Split(info, "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
					s.Version = v
				}
			}
			return s, nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("redis-server on %s did not answer in 10s: %v\n%s", s.Addr, err, s.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Pid is the server's process ID.
func (s *redisServer) Pid() int { return s.cmd.Process.Pid }

// client returns a client with a pool of conns connections.
func (s *redisServer) client(conns int) *redis.Client { return redisClient(s.Addr, conns) }

// redisClient returns a client of the Redis server at addr with a pool of
// conns connections, kept open.
func redisClient(addr string, conns int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: addr, PoolSize: conns, MinIdleConns: conns, MaxIdleConns: conns,
		DisableIdentity: true, Protocol: 2,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
	})
}

// Stop ends the process (SIGTERM, then SIGKILL after 5s) and waits for it.
func (s *redisServer) Stop() {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	child.Wait(s.cmd, 5*time.Second)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
