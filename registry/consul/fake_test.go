package consul

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/cloudrift/cloudrift/internal/backoff"
	"github.com/cloudrift/cloudrift/registry"
)

// fake is a scripted Consul HTTP endpoint on loopback. Every request to a
// scripted path is handed to the test goroutine (reqs), which answers it
// (answer) while the handler waits; the test thus controls every index and
// every error the connector sees, in order.
type fake struct {
	t     *testing.T
	srv   *httptest.Server
	reqs  chan *fakeReq
	stop  chan struct{}
	conns atomic.Int64 // TCP connections accepted
}

// fakeReq is one request waiting for its answer.
type fakeReq struct {
	method, path string
	query        map[string]string
	token        string
	body         []byte
	resp         chan fakeResp
}

type fakeResp struct {
	code    int
	index   uint64 // X-Consul-Index; 0 sends "0"
	body    any    // JSON-encoded when code is 200
	errBody string // sent as text otherwise
}

func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{t: t, reqs: make(chan *fakeReq), stop: make(chan struct{})}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.srv.Start()
	t.Cleanup(func() {
		close(f.stop)
		f.srv.Close()
	})
	return f
}

func (f *fake) addr() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	q := map[string]string{}
	for k, v := range r.URL.Query() {
		q[k] = strings.Join(v, ",")
	}
	var body []byte
	if r.Body != nil {
		body = make([]byte, 0, 512)
		buf := make([]byte, 512)
		for {
			n, err := r.Body.Read(buf)
			body = append(body, buf[:n]...)
			if err != nil {
				break
			}
		}
	}
	req := &fakeReq{method: r.Method, path: r.URL.Path, query: q, token: r.Header.Get("X-Consul-Token"),
		body: body, resp: make(chan fakeResp, 1)}
	select {
	case f.reqs <- req:
	case <-r.Context().Done():
		return
	case <-f.stop:
		http.Error(w, "fake stopped", http.StatusServiceUnavailable)
		return
	}
	var resp fakeResp
	select {
	case resp = <-req.resp:
	case <-r.Context().Done():
		return
	case <-f.stop:
		http.Error(w, "fake stopped", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("X-Consul-Index", strconv.FormatUint(resp.index, 10))
	if resp.code != http.StatusOK {
		http.Error(w, resp.errBody, resp.code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp.body)
}

// next returns the next request, failing the test after a generous bound.
func (f *fake) next() *fakeReq {
	f.t.Helper()
	select {
	case r := <-f.reqs:
		return r
	case <-time.After(10 * time.Second):
		f.t.Fatal("fake consul: no request within 10s")
		return nil
	}
}

// nextHealth returns the next request, which must be a passing-only health
// query of service.
func (f *fake) nextHealth(service string) *fakeReq {
	f.t.Helper()
	r := f.next()
	if r.path != "/v1/health/service/"+service {
		f.t.Fatalf("fake consul: request %s %s, want the health of %s", r.method, r.path, service)
	}
	if _, ok := r.query["passing"]; !ok {
		f.t.Errorf("fake consul: health query without passing: %v", r.query)
	}
	return r
}

// waitIndex returns the request's wait index (0 when absent).
func (r *fakeReq) waitIndex(t *testing.T) uint64 {
	t.Helper()
	s, ok := r.query["index"]
	if !ok {
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("bad index %q: %v", s, err)
	}
	return n
}

func (r *fakeReq) ok(index uint64, body any) {
	r.resp <- fakeResp{code: http.StatusOK, index: index, body: body}
}

func (r *fakeReq) fail(code int, msg string) {
	r.resp <- fakeResp{code: code, errBody: msg}
}

// entry returns the service entry Consul would hold for m registered by a
// connector of system.
func entry(system string, m registry.Member, modify uint64) *api.ServiceEntry {
	host, port, _ := strings.Cut(m.Address, ":")
	p, _ := strconv.Atoi(port)
	meta := map[string]string{metaIncarnation: strconv.FormatUint(m.Incarnation, 10)}
	for k, v := range m.Meta {
		meta[k] = v
	}
	return &api.ServiceEntry{
		Node: &api.Node{Node: "n1", Address: "127.0.0.9"},
		Service: &api.AgentService{
			ID:          system + ":" + m.ID,
			Service:     "cloudrift-" + system + "-" + m.Group,
			Tags:        []string{"cloudrift", "system=" + system, "group=" + m.Group},
			Address:     host,
			Port:        p,
			Meta:        meta,
			ModifyIndex: modify,
		},
		Checks: api.HealthChecks{{Status: api.HealthPassing}},
	}
}

func newFakeConn(t *testing.T, f *fake, cfg Config) *Connector {
	t.Helper()
	if cfg.System == "" {
		cfg.System = "sys"
	}
	if cfg.Address == "" && f != nil {
		cfg.Address = f.addr()
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// recv returns the next snapshot, failing after a generous bound.
func recv(t *testing.T, ch <-chan []registry.Member) []registry.Member {
	t.Helper()
	select {
	case ms, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ms
	case <-time.After(10 * time.Second):
		t.Fatal("no snapshot within 10s")
		return nil
	}
}

// noSnapshot fails if a snapshot is waiting on ch.
func noSnapshot(t *testing.T, ch <-chan []registry.Member, when string) {
	t.Helper()
	select {
	case ms, ok := <-ch:
		t.Fatalf("%s: got snapshot %v (open=%v), want none", when, ms, ok)
	default:
	}
}

func member(group, id string, inc uint64) registry.Member {
	return registry.Member{ID: id, Group: group, Address: "127.0.0.1:7000", Incarnation: inc,
		Meta: map[string]string{"proto": "1"}}
}

// The index rules, as seen on the wire: the wait index the connector sends
// after each answer.
func TestFakeIndexRules(t *testing.T) {
	f := newFake(t)
	c := newFakeConn(t, f, Config{})
	ch, err := c.Watch(t.Context(), "g")
	if err != nil {
		t.Fatal(err)
	}
	m := member("g", "a", 1)
	body := []*api.ServiceEntry{entry("sys", m, 1)}
	steps := []struct {
		name      string
		wantIndex uint64 // wait index of the request
		answer    uint64 // index answered
	}{
		{"first query does not block", 0, 10},
		{"blocks on the answered index", 10, 12},
		{"index goes backwards", 12, 5},
		{"reset to 0 after going backwards", 0, 5},
		{"blocks again", 5, 0},
		{"0 answered: 1, never 0", 1, 7},
		{"blocks from 7", 7, 0},
		{"0 answered after blocking: 1", 1, 9},
		{"blocks from 9; times out with the same index", 9, 9},
		{"unchanged after a timeout; goes backwards", 9, 3},
		{"reset to 0 again", 0, 4},
	}
	for _, s := range steps {
		r := f.nextHealth("cloudrift-sys-g")
		if got := r.waitIndex(t); got != s.wantIndex {
			t.Fatalf("%s: wait index %d, want %d", s.name, got, s.wantIndex)
		}
		if s.wantIndex > 0 && r.query["wait"] == "" {
			t.Errorf("%s: blocking query without wait: %v", s.name, r.query)
		}
		r.ok(s.answer, body)
	}
	if r := f.nextHealth("cloudrift-sys-g"); r.waitIndex(t) != 4 {
		t.Fatalf("last wait index %d, want 4", r.waitIndex(t))
	}
	// One snapshot for all those answers: they were equal.
	if ms := recv(t, ch); len(ms) != 1 || !ms[0].Equal(m) {
		t.Fatalf("snapshot %v, want [%v]", ms, m)
	}
	noSnapshot(t, ch, "after equal answers")
}

func TestNextIndex(t *testing.T) {
	for _, tc := range []struct{ prev, got, want uint64 }{
		{0, 0, 1},
		{0, 1, 1},
		{0, 42, 42},
		{42, 42, 42},
		{42, 43, 43},
		{42, 41, 0},
		{42, 1, 0},
		{42, 0, 1},
		{1, 0, 1},
		{1<<64 - 1, 1<<64 - 1, 1<<64 - 1},
	} {
		if got := nextIndex(tc.prev, tc.got); got != tc.want {
			t.Errorf("nextIndex(%d, %d) = %d, want %d", tc.prev, tc.got, got, tc.want)
		}
	}
}

// The watch's pauses start at half of retryMin and stay within retryMax.
func TestRetryPolicy(t *testing.T) {
	p := backoff.Policy{Min: retryMin, Max: retryMax}
	if got := p.Step(1, 0); got != retryMin/2 {
		t.Errorf("first pause %v, want %v", got, retryMin/2)
	}
	for n := 1; n < 64; n++ {
		if d := p.Step(n, 0.999); d > retryMax {
			t.Errorf("pause after %d failures %v, above the cap %v", n, d, retryMax)
		}
	}
}

// Errors keep the last known set; a genuinely empty answer is published.
func TestFakeErrorsKeepLastSet(t *testing.T) {
	f := newFake(t)
	c := newFakeConn(t, f, Config{})
	ch, err := c.Watch(t.Context(), "g")
	if err != nil {
		t.Fatal(err)
	}
	a := member("g", "a", 1)
	f.nextHealth("cloudrift-sys-g").ok(10, []*api.ServiceEntry{entry("sys", a, 1)})
	if ms := recv(t, ch); len(ms) != 1 || !ms[0].Equal(a) {
		t.Fatalf("first snapshot %v, want [%v]", ms, a)
	}

	r := f.nextHealth("cloudrift-sys-g")
	if r.waitIndex(t) != 10 {
		t.Fatalf("wait index %d, want 10", r.waitIndex(t))
	}
	r.fail(http.StatusInternalServerError, "No cluster leader")
	for i, code := range []int{http.StatusBadGateway, http.StatusInternalServerError, http.StatusForbidden} {
		r := f.nextHealth("cloudrift-sys-g")
		if r.waitIndex(t) != 0 {
			t.Fatalf("error %d: wait index %d after an error, want 0", i, r.waitIndex(t))
		}
		r.fail(code, "rpc error")
	}
	// The connector has handled every error and sent the next query:
	// whatever it published on those errors would be waiting now.
	r = f.nextHealth("cloudrift-sys-g")
	noSnapshot(t, ch, "after errors")
	r.ok(11, []*api.ServiceEntry{})
	if ms := recv(t, ch); len(ms) != 0 {
		t.Fatalf("snapshot %v, want the empty set Consul answered", ms)
	}
}

// Nothing is published until Consul answers; then even an empty set is.
func TestFakeFirstSnapshotWaitsForConsul(t *testing.T) {
	f := newFake(t)
	c := newFakeConn(t, f, Config{})
	ch, err := c.Watch(t.Context(), "g")
	if err != nil {
		t.Fatal(err)
	}
	f.nextHealth("cloudrift-sys-g").fail(http.StatusInternalServerError, "No cluster leader")
	r := f.nextHealth("cloudrift-sys-g")
	noSnapshot(t, ch, "before Consul answered")
	r.ok(3, nil)
	if ms := recv(t, ch); len(ms) != 0 {
		t.Fatalf("snapshot %v, want empty", ms)
	}
}

// Entries of other systems, other groups, and foreign services are not
// members; one ID on two nodes gives the newest registration.
func TestFakeDecodeFilters(t *testing.T) {
	f := newFake(t)
	c := newFakeConn(t, f, Config{System: "sys"})
	ch, err := c.Watch(t.Context(), "g")
	if err != nil {
		t.Fatal(err)
	}
	a := member("g", "a", 1)
	a.Meta = nil
	b := member("g", "b", 2)
	bOld := b
	bOld.Address = "127.0.0.1:6999"
	other := entry("sys2", member("g", "c", 3), 1)
	other.Service.Service = "cloudrift-sys-g"
	otherGroup := entry("sys", member("h", "d", 4), 1)
	foreign := &api.ServiceEntry{Service: &api.AgentService{ID: "web", Service: "cloudrift-sys-g"}}
	noHost := entry("sys", member("g", "e", 5), 1)
	noHost.Service.Address = "" // Consul's rule: the node's address
	badInc := entry("sys", member("g", "f", 6), 1)
	badInc.Service.Meta[metaIncarnation] = "x"
	f.nextHealth("cloudrift-sys-g").ok(5, []*api.ServiceEntry{
		entry("sys", b, 9), entry("sys", a, 1), other, otherGroup, foreign, noHost, badInc, entry("sys", bOld, 3),
	})
	e := member("g", "e", 5)
	e.Address = "127.0.0.9:7000"
	want := []registry.Member{a, b, e}
	ms := recv(t, ch)
	if len(ms) != len(want) {
		t.Fatalf("snapshot %v, want %v", ms, want)
	}
	for i := range want {
		if !ms[i].Equal(want[i]) {
			t.Errorf("member %d: %+v, want %+v", i, ms[i], want[i])
		}
	}
}

// The standard environment is read; Config fields win over it.
func TestEnvironmentAndPrecedence(t *testing.T) {
	envFake, cfgFake := newFake(t), newFake(t)
	t.Setenv("CONSUL_HTTP_ADDR", envFake.addr())
	t.Setenv("CONSUL_HTTP_TOKEN", "env-token")
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", "")

	fromEnv := newFakeConn(t, nil, Config{System: "sys"})
	if _, err := fromEnv.Watch(t.Context(), "g"); err != nil {
		t.Fatal(err)
	}
	if r := envFake.nextHealth("cloudrift-sys-g"); r.token != "env-token" {
		t.Errorf("token %q, want the one from CONSUL_HTTP_TOKEN", r.token)
	} else {
		r.ok(1, nil)
	}

	fromCfg := newFakeConn(t, nil, Config{System: "sys", Address: cfgFake.addr(), Token: "cfg-token"})
	if _, err := fromCfg.Watch(t.Context(), "g"); err != nil {
		t.Fatal(err)
	}
	if r := cfgFake.nextHealth("cloudrift-sys-g"); r.token != "cfg-token" {
		t.Errorf("token %q, want the one from Config.Token", r.token)
	} else {
		r.ok(1, nil)
	}

	// A token file in the environment loses to Config.Token too.
	file := t.TempDir() + "/token"
	if err := os.WriteFile(file, []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", file)
	fileCfg := newFakeConn(t, nil, Config{System: "sys2"})
	if _, err := fileCfg.Watch(t.Context(), "g"); err != nil {
		t.Fatal(err)
	}
	if r := envFake.nextHealth("cloudrift-sys2-g"); r.token != "file-token" {
		t.Errorf("token %q, want the one from CONSUL_HTTP_TOKEN_FILE", r.token)
	} else {
		r.ok(1, nil)
	}
	cfgWins := newFakeConn(t, nil, Config{System: "sys3", Token: "cfg-token"})
	if _, err := cfgWins.Watch(t.Context(), "g"); err != nil {
		t.Fatal(err)
	}
	if r := envFake.nextHealth("cloudrift-sys3-g"); r.token != "cfg-token" {
		t.Errorf("token %q, want Config.Token over CONSUL_HTTP_TOKEN_FILE", r.token)
	} else {
		r.ok(1, nil)
	}
}

func TestNewDoesNotDial(t *testing.T) {
	f := newFake(t)
	c, err := New(Config{System: "sys", Address: f.addr()})
	if err != nil {
		t.Fatal(err)
	}
	if n := f.conns.Load(); n != 0 {
		t.Errorf("New opened %d connections", n)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close of an unused connector: %v", err)
	}
	if n := f.conns.Load(); n != 0 {
		t.Errorf("Close of an unused connector opened %d connections", n)
	}
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no system", Config{}},
		{"bad system", Config{System: "a:b"}},
		{"system with slash", Config{System: "a/b"}},
		{"short TTL", Config{System: "s", TTL: 10 * time.Millisecond}},
		{"negative TTL", Config{System: "s", TTL: -time.Second}},
		{"short deregister", Config{System: "s", DeregisterAfter: 10 * time.Second}},
		{"long wait", Config{System: "s", WaitTime: time.Hour}},
		{"negative wait", Config{System: "s", WaitTime: -time.Second}},
		{"bad scheme", Config{System: "s", Scheme: "ftp"}},
		{"missing CA", Config{System: "s", TLS: TLSConfig{CAFile: "/nonexistent/ca.pem"}}},
	} {
		_, err := New(tc.cfg)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New error %v, want ErrInvalidConfig", tc.name, err)
		}
	}
	c, err := New(Config{System: "s"})
	if err != nil {
		t.Fatalf("zero config with a system: %v", err)
	}
	if c.ttl != DefaultTTL || c.deregAfter != DefaultDeregisterAfter || c.waitTime != DefaultWaitTime ||
		c.heartbeatInterval() != DefaultTTL/3 {
		t.Errorf("defaults: ttl %v dereg %v wait %v heartbeat %v", c.ttl, c.deregAfter, c.waitTime, c.heartbeatInterval())
	}
	_ = c.Close()
}

// Members Consul cannot store are refused before any request.
func TestRegisterValidates(t *testing.T) {
	f := newFake(t)
	c := newFakeConn(t, f, Config{})
	ok := member("g", "a", 1)
	long := strings.Repeat("x", 600)
	for _, tc := range []struct {
		name string
		edit func(*registry.Member)
	}{
		{"no ID", func(m *registry.Member) { m.ID = "" }},
		{"ID with slash", func(m *registry.Member) { m.ID = "a/b" }},
		{"ID with space", func(m *registry.Member) { m.ID = "a b" }},
		{"bad group", func(m *registry.Member) { m.Group = "g/h" }},
		{"no port", func(m *registry.Member) { m.Address = "127.0.0.1" }},
		{"no host", func(m *registry.Member) { m.Address = ":7000" }},
		{"port 0", func(m *registry.Member) { m.Address = "127.0.0.1:0" }},
		{"meta key with dot", func(m *registry.Member) { m.Meta = map[string]string{"a.b": "1"} }},
		{"reserved meta key", func(m *registry.Member) { m.Meta = map[string]string{"cloudrift_x": "1"} }},
		{"consul meta key", func(m *registry.Member) { m.Meta = map[string]string{"consul-x": "1"} }},
		{"long meta value", func(m *registry.Member) { m.Meta = map[string]string{"k": long} }},
	} {
		m := ok
		tc.edit(&m)
		if err := c.Register(t.Context(), m); !errors.Is(err, registry.ErrInvalidMember) {
			t.Errorf("%s: Register error %v, want ErrInvalidMember", tc.name, err)
		}
	}
	if n := f.conns.Load(); n != 0 {
		t.Errorf("invalid members caused %d connections", n)
	}
}

// The registration Consul receives, and an ACL refusal at Register.
func TestFakeRegister(t *testing.T) {
	f := newFake(t)
	t.Setenv("CONSUL_HTTP_TOKEN", "wrong")
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", "")
	c := newFakeConn(t, f, Config{TTL: 3 * time.Second})
	m := member("g", "a", 1<<63+5)
	done := make(chan error, 1)
	go func() { done <- c.Register(t.Context(), m) }()
	r := f.next()
	if r.method != http.MethodPut || r.path != "/v1/agent/service/register" || r.query["replace-existing-checks"] != "true" {
		t.Fatalf("request %s %s %v", r.method, r.path, r.query)
	}
	var got api.AgentServiceRegistration
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("registration body %s: %v", r.body, err)
	}
	if got.ID != "sys:a" || got.Name != "cloudrift-sys-g" || got.Address != "127.0.0.1" || got.Port != 7000 ||
		got.Meta[metaIncarnation] != fmt.Sprint(uint64(1<<63+5)) || got.Meta["proto"] != "1" ||
		strings.Join(got.Tags, ",") != "cloudrift,system=sys,group=g" {
		t.Errorf("registration %+v", got)
	}
	if got.Check == nil || got.Check.TTL != "3s" || got.Check.Status != api.HealthPassing ||
		got.Check.DeregisterCriticalServiceAfter != "1m0s" || got.Check.CheckID != "service:sys:a" {
		t.Errorf("check %+v", got.Check)
	}
	r.fail(http.StatusForbidden, "ACL not found")
	err := <-done
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Register error %v, want ErrUnauthorized", err)
	}
	for _, want := range []string{"does not exist", "CONSUL_HTTP_TOKEN", "register a"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// The refused registration does not count.
	if err := c.Deregister(t.Context()); !errors.Is(err, registry.ErrNotRegistered) {
		t.Errorf("Deregister after a refused Register: %v", err)
	}
}

// Deregistration of a service Consul no longer has is a success.
func TestFakeDeregister404(t *testing.T) {
	f := newFake(t)
	c := newFakeConn(t, f, Config{TTL: time.Hour})
	done := make(chan error, 1)
	go func() { done <- c.Register(t.Context(), member("g", "a", 1)) }()
	f.next().ok(0, nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	go func() { done <- c.Deregister(t.Context()) }()
	r := f.next()
	if r.path != "/v1/agent/service/deregister/sys:a" {
		t.Fatalf("request %s %s", r.method, r.path)
	}
	r.fail(http.StatusNotFound, "Unknown service ID")
	if err := <-done; err != nil {
		t.Errorf("Deregister with a 404: %v", err)
	}
}
