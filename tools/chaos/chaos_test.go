package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/internal/consultest"
	"github.com/cloudrift/cloudrift/internal/containertest"
)

// TestChaos runs the suite, every event, against the example system in
// Docker, as `go run ./tools/chaos` does (two to three minutes). It needs
// docker, docker-compose and a Consul binary; without them it skips,
// unless CI=true, when it fails.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images and runs a dozen containers for minutes")
	}
	missing := func(err error) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err := containertest.DockerMissing(); err != nil {
		missing(err)
	}
	if _, err := consultest.Binary(); err != nil {
		missing(err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	stats, err := run(ctx, root, Options{Log: t.Logf})
	var table strings.Builder
	printTable(&table, stats)
	t.Log("\n" + table.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != len(fullEvents())+1 {
		t.Fatalf("%d events ran, want %d and the start", len(stats), len(fullEvents()))
	}
}

// TestEventsByName resolves names of both lists and refuses unknown ones
// with the list of names.
func TestEventsByName(t *testing.T) {
	evs, err := eventsByName("kill client, pause cloud,scale world to 4")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range evs {
		names = append(names, e.name)
	}
	if got := strings.Join(names, ","); got != "kill client,pause cloud,scale world to 4" {
		t.Errorf("events %s", got)
	}
	if _, err := eventsByName("kill everything"); err == nil || !strings.Contains(err.Error(), "rolling restart cloud") {
		t.Errorf("unknown event: %v, want the list of names", err)
	}
}

// TestQuantile takes the nearest rank.
func TestQuantile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	if q := quantile(ds, 0.5); q != 3 {
		t.Errorf("p50 %v, want 3", q)
	}
	if q := quantile(ds, 0.99); q != 5 {
		t.Errorf("p99 %v, want 5", q)
	}
	if q := quantile(ds[:1], 0.5); q != 5 {
		t.Errorf("p50 of one %v, want 5", q)
	}
}
