package ops_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/ops"
	"github.com/cloudrift/cloudrift/plugins"
)

// A lobby where game clients connect, relaying their messages to a world
// server, which answers through the lobby.
const relayYAML = `
system: opstest
secret: a-secret-of-sufficient-length
groups:
  - {name: lobby, visibility: external, connectsTo: [world]}
  - {name: world, visibility: internal}
`

// relay forwards each client message to the world servers.
type relay struct {
	host plugins.Host
}

func (r *relay) Start(_ context.Context, h plugins.Host) error { r.host = h; return nil }

func (r *relay) ClientMessage(c plugins.Client, m plugins.Message) error {
	g, err := r.host.RemoteGroup("world")
	if err != nil {
		return err
	}
	for _, s := range g.Servers() {
		if err := s.Send(m.Tag, m.Payload); err != nil {
			return err
		}
	}
	return c.Send(m.Tag, m.Payload)
}

// failing fails every client message, to count hook errors.
type failing struct{ n atomic.Int64 }

func (f *failing) ClientMessage(plugins.Client, plugins.Message) error {
	f.n.Add(1)
	return io.ErrUnexpectedEOF
}

func startRelay(t *testing.T, extra ...plugins.Plugin) *clustertest.System {
	t.Helper()
	ps := append([]plugins.Plugin{&relay{}}, extra...)
	sys := clustertest.Start(t, relayYAML, clustertest.WithPlugins("lobby-1", ps...))
	sys.WaitLinked("lobby")
	return sys
}

func serve(t *testing.T, h http.Handler) *ops.Listener {
	t.Helper()
	l, err := ops.Listen("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func get(t *testing.T, method, url string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// exchange sends n messages from a new client and waits for the n echoes.
func exchange(t *testing.T, sys *clustertest.System, n int) {
	t.Helper()
	c := sys.Server("lobby-1").Dial()
	for i := range n {
		if err := c.Send(7, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(10 * time.Second)
	for range n {
		select {
		case <-c.Messages():
		case <-deadline:
			t.Fatal("echoes did not come back within 10s")
		}
	}
}

func TestMetricsCountTraffic(t *testing.T) {
	f := &failing{}
	sys := startRelay(t, f)
	lobby := sys.Server("lobby-1").Cluster()
	world := sys.Server("world-1").Cluster()
	l := serve(t, ops.NewHandler(ops.Options{}, lobby, world))
	exchange(t, sys, 5)
	// The lobby echoes without waiting for the world, whose copies may
	// still be on the link.
	sys.WaitFor("the world to read the 5 messages", func() bool { return world.Stats().MessagesIn == 5 })

	code, body := get(t, "GET", l.URL()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	for _, want := range []string{
		`cloudrift_links_up{group="lobby",peer_group="world"} 1`,
		`cloudrift_link_messages_sent_total{group="lobby",peer_group="world"} 5`,
		`cloudrift_link_messages_received_total{group="world",peer_group="lobby"} 5`,
		`cloudrift_client_messages_received_total{group="lobby"} 5`,
		`cloudrift_clients_connected{group="lobby"} 1`,
		`cloudrift_hook_errors_total{group="lobby",hook="ClientMessage",plugin="`,
		`cloudrift_registry_members{group="lobby",peer_group="world"} 1`,
		`cloudrift_servers_ready{group="world"} 1`,
		`cloudrift_link_sends_refused_total{group="lobby"} 0`,
		`cloudrift_read_pauses_total{group="lobby",loop="client"} 0`,
		`cloudrift_servers_draining{group="world"} 0`,
		"go_goroutines ",
		"process_open_fds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "lobby-1") || strings.Contains(body, "world-1") {
		t.Error("/metrics names a server; labels must stay bounded")
	}
	if f.n.Load() != 5 {
		t.Errorf("failing plugin saw %d messages, want 5", f.n.Load())
	}
}

func TestClientClosesAreCountedByReason(t *testing.T) {
	sys := startRelay(t)
	lobby := sys.Server("lobby-1").Cluster()
	l := serve(t, ops.NewHandler(ops.Options{}, lobby))
	c := sys.Server("lobby-1").Dial()
	c.Close()
	sys.WaitFor("the lobby to count the closed client", func() bool { return lobby.Clients().Connected == 0 && len(lobby.Closes().Clients) > 0 })
	_, body := get(t, "GET", l.URL()+"/metrics")
	if !strings.Contains(body, `cloudrift_client_closes_total{group="lobby",reason=`) {
		t.Errorf("no client close counted:\n%s", grep(body, "client_closes"))
	}
}

func TestHealthReadyAndStatus(t *testing.T) {
	sys := startRelay(t)
	lobby := sys.Server("lobby-1")
	l := serve(t, ops.NewHandler(ops.Options{}, lobby.Cluster()))
	if code, body := get(t, "GET", l.URL()+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, "GET", l.URL()+"/readyz"); code != 200 {
		t.Errorf("/readyz: %d %q", code, body)
	}
	code, body := get(t, "GET", l.URL()+"/status")
	var st ops.Status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("/status: %d %v %s", code, err, body)
	}
	if st.ID != "lobby-1" || st.Group != "lobby" || !st.Ready || len(st.Peers) != 1 || st.Peers[0].ID != "world-1" || !st.Peers[0].Linked || st.Peers[0].Transport != "unix" {
		t.Errorf("/status = %+v", st)
	}

	sys.Server("world-1").Kill()
	sys.WaitFor("the lobby to lose world-1", func() bool { return lobby.Cluster().Stats().LinksUp == 0 })
	// The registry may still list the killed server (until its entry
	// expires) or not; either way the answer is consistent with it.
	code, body = get(t, "GET", l.URL()+"/readyz")
	listed := len(sys.Hub().Members("world")) > 0
	if listed && (code != http.StatusServiceUnavailable || !strings.Contains(body, `no link to group "world"`)) {
		t.Errorf("/readyz with world listed but unlinked: %d %q", code, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lobby.Cluster().Shutdown(ctx)
	if code, body := get(t, "GET", l.URL()+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready") {
		t.Errorf("/readyz after shutdown: %d %q", code, body)
	}
	if code, _ := get(t, "GET", l.URL()+"/healthz"); code != 200 {
		t.Errorf("/healthz after shutdown: %d", code)
	}
}

func TestUnknownPathsMethodsAndPprof(t *testing.T) {
	sys := startRelay(t)
	srv := sys.Server("lobby-1").Cluster()
	off := serve(t, ops.NewHandler(ops.Options{}, srv))
	if code, body := get(t, "GET", off.URL()+"/nope"); code != 404 || !strings.Contains(body, "/metrics") {
		t.Errorf("/nope: %d %q", code, body)
	}
	if code, _ := get(t, "GET", off.URL()+"/debug/pprof/"); code != 404 {
		t.Errorf("pprof without ops.pprof: %d, want 404", code)
	}
	if code, body := get(t, "POST", off.URL()+"/metrics"); code != 405 || !strings.Contains(body, "use GET") {
		t.Errorf("POST /metrics: %d %q", code, body)
	}

	on := serve(t, ops.NewHandler(ops.Options{Pprof: true, Token: "s3cret"}, srv))
	if code, body := get(t, "GET", on.URL()+"/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof from loopback: %d", code)
	}
	// No socket here has a non-loopback address: a request claiming one
	// goes to the handler directly.
	h := ops.NewHandler(ops.Options{Pprof: true, Token: "s3cret"}, srv)
	for _, tc := range []struct {
		auth string
		want int
	}{{"", 403}, {"Bearer wrong", 403}, {"Bearer s3cret", 200}} {
		req, _ := http.NewRequest("GET", "/debug/pprof/cmdline", nil)
		req.RemoteAddr = "192.0.2.7:5555"
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("pprof from 192.0.2.7 with %q: %d, want %d", tc.auth, rec.Code, tc.want)
		}
	}
}

func grep(body, word string) string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		if strings.Contains(line, word) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func TestLinkClosesAndRefusalsByReason(t *testing.T) {
	sys := startRelay(t)
	lobby, world := sys.Server("lobby-1"), sys.Server("world-1")
	l := serve(t, ops.NewHandler(ops.Options{}, lobby.Cluster(), world.Cluster()))

	// A browser (HTTP) at a server's link port is refused.
	if code, _ := getErr("http://" + world.Addr() + "/"); code == 200 {
		t.Error("the link port answered HTTP with 200")
	}
	sys.WaitFor("world-1 to count the refusal", func() bool { return world.Cluster().Closes().Refused["client_protocol"] == 1 })

	world.Kill()
	sys.WaitFor("lobby-1 to count the lost link", func() bool { return len(lobby.Cluster().Closes().Links) > 0 })
	_, body := get(t, "GET", l.URL()+"/metrics")
	for _, want := range []string{
		`cloudrift_handshakes_refused_total{group="world",reason="client_protocol"} 1`,
		`cloudrift_link_closes_total{group="lobby",reason=`,
		`cloudrift_links_up{group="lobby",peer_group="world"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, grep(body, "cloudrift_l")+grep(body, "refused"))
		}
	}
}

// getErr GETs url and returns the status, 0 when no HTTP answer came.
func getErr(url string) (int, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestDrainEndpoint(t *testing.T) {
	sys := startRelay(t)
	lobby := sys.Server("lobby-1")
	c := lobby.Dial() // no other lobby server: the drain waits, then closes it
	l := serve(t, ops.NewHandler(ops.Options{Token: "s3cret"}, lobby.Cluster()))
	if code, body := get(t, "GET", l.URL()+"/drain"); code != 405 || !strings.Contains(body, "use POST") {
		t.Errorf("GET /drain: %d %q", code, body)
	}
	// From a non-loopback address, only with the token.
	h := ops.NewHandler(ops.Options{Token: "s3cret"}, lobby.Cluster())
	req, _ := http.NewRequest("POST", "/drain", nil)
	req.RemoteAddr = "192.0.2.7:5555"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 403 || lobby.Cluster().Draining() {
		t.Fatalf("drain from 192.0.2.7 without the token: %d, draining %v", rec.Code, lobby.Cluster().Draining())
	}

	if code, body := get(t, "POST", l.URL()+"/drain"); code != 202 || !strings.Contains(body, "lobby-1: draining") {
		t.Fatalf("POST /drain: %d %q", code, body)
	}
	if code, body := get(t, "GET", l.URL()+"/readyz"); code != 503 || !strings.Contains(body, "draining") {
		t.Errorf("/readyz while draining: %d %q", code, body)
	}
	if _, body := get(t, "GET", l.URL()+"/metrics"); !strings.Contains(body, `cloudrift_servers_draining{group="lobby"} 1`) {
		t.Errorf("/metrics while draining lacks cloudrift_servers_draining 1")
	}
	var st ops.Status
	_, body := get(t, "GET", l.URL()+"/status")
	if err := json.Unmarshal([]byte(body), &st); err != nil || !st.Draining {
		t.Errorf("/status while draining: %v %s", err, body)
	}
	if code, body := get(t, "POST", l.URL()+"/drain"); code != 409 || !strings.Contains(body, "already draining") {
		t.Errorf("second POST /drain: %d %q", code, body)
	}
	c.Close()
	<-lobby.Cluster().Done()
	if code, body := get(t, "POST", l.URL()+"/drain"); code != 409 || !strings.Contains(body, "not running") {
		t.Errorf("POST /drain after the drain: %d %q", code, body)
	}
}
