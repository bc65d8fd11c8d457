package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/dashboard"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/ops"
)

// lateHandler serves the handler set after its listener exists: a
// server's metadata names its operations URL before the server exists.
type lateHandler struct{ h atomic.Pointer[http.Handler] }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := l.h.Load()
	if h == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	(*h).ServeHTTP(w, r)
}

// startWithOps starts server id of group with its operations URL in its
// registry metadata, as a deployment that wants a dashboard does.
func startWithOps(t *testing.T, sys *clustertest.System, group, id string) (*clustertest.Server, *httptest.Server) {
	t.Helper()
	late := &lateHandler{}
	port := httptest.NewServer(late)
	t.Cleanup(port.Close)
	srv := sys.StartServerWith(cluster.Options{Group: group, ID: id, Meta: map[string]string{dashboard.MetaOps: port.URL}})
	var h http.Handler = ops.NewHandler(ops.Options{}, srv.Cluster())
	late.h.Store(&h)
	return srv, port
}

// serveDashboard runs a dashboard of opts until the test ends and returns
// the URL of its page.
func serveDashboard(t *testing.T, opts dashboard.Options) string {
	t.Helper()
	d, err := dashboard.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	page := httptest.NewServer(d)
	t.Cleanup(page.Close)
	return page.URL
}

func state(t *testing.T, page string) dashboard.State {
	t.Helper()
	resp, err := http.Get(page + "/state.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var st dashboard.State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state.json: %v in %s", err, b)
	}
	return st
}

func waitState(t *testing.T, page, what string, cond func(dashboard.State) bool) {
	t.Helper()
	deadline := time.Now().Add(testutil.Patience)
	for {
		st := state(t, page)
		if cond(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s; servers: %+v", what, st.Servers)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func serverState(st dashboard.State, id string) string {
	for _, s := range st.Servers {
		if s.ID == id {
			return s.State
		}
	}
	return ""
}

func TestServersAreFoundInRegistryMetadata(t *testing.T) {
	sys := clustertest.New(t, systemYAML) // nothing started
	for _, id := range []string{"world-1", "world-2"} {
		startWithOps(t, sys, "world", id)
	}
	front, frontPort := startWithOps(t, sys, "front", "front-1")
	conn := sys.Hub().Connector()
	t.Cleanup(func() { conn.Close() })
	page := serveDashboard(t, dashboard.Options{System: sys.Config(), Registry: conn, Interval: 50 * time.Millisecond})

	waitState(t, page, "three ready servers linked", func(st dashboard.State) bool {
		linked := 0
		for _, l := range st.Links {
			if l.Linked {
				linked++
			}
		}
		return len(st.Servers) == 3 && st.Groups[1].Ready == 2 && serverState(st, "front-1") == dashboard.StateReady && linked == 2
	})
	front.Kill()
	frontPort.Close()
	waitState(t, page, "front-1 down", func(st dashboard.State) bool {
		return serverState(st, "front-1") == dashboard.StateDown
	})
	waitState(t, page, "the closes of front-1's links", func(st dashboard.State) bool {
		for _, e := range st.Events {
			if e.Kind == "link" && e.Group == "world" {
				return true
			}
		}
		return false
	})
}
