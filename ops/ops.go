// Package ops is the operations port of cloudrift servers: an HTTP
// listener, loopback by default, that serves
//
//	/metrics        Prometheus metrics (Go, process and cloudrift's own)
//	/healthz        200 while the process runs
//	/readyz         200 when every server is ready (cluster.Server.Ready),
//	                503 with the reason otherwise
//	/status         JSON of the server (an array with several servers)
//	/drain          POST: drain the servers (cluster.Server.BeginDrain); the
//	                process stops once they have drained
//	/debug/pprof/   Go's profiles, only when Options.Pprof is set
//
// Metrics read the servers' counters at scrape time: serving them adds
// no work per message. Labels name groups, peer groups, plugins, hooks and
// reasons, never a server or a client.
package ops

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cloudrift/cloudrift/cluster"
)

// ErrListen wraps a failure to open the operations listener.
var ErrListen = errors.New("ops: listen")

// Options configure the operations handler. The zero value serves
// everything but pprof.
type Options struct {
	// Pprof serves /debug/pprof/. False: those paths answer 404.
	Pprof bool
	// Token lets a request from a non-loopback address reach
	// /debug/pprof/ with "Authorization: Bearer TOKEN". "": pprof answers
	// loopback addresses only.
	Token string
}

// NewHandler returns the operations handler of servers (one in
// production; every server of the process in dev mode).
func NewHandler(opts Options, servers ...*cluster.Server) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&collector{servers: servers},
	)
	h := &handler{
		opts:    opts,
		servers: servers,
		metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}),
		pprof:   http.NewServeMux(),
	}
	h.pprof.HandleFunc("/debug/pprof/", pprof.Index)
	h.pprof.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	h.pprof.HandleFunc("/debug/pprof/profile", pprof.Profile)
	h.pprof.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	h.pprof.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return h
}

type handler struct {
	opts    Options
	servers []*cluster.Server
	metrics http.Handler
	pprof   *http.ServeMux
}

const paths = "/metrics, /healthz, /readyz, /status, /drain (POST)"

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	pprofPath := path == "/debug/pprof" || strings.HasPrefix(path, "/debug/pprof/")
	switch {
	case path == "/metrics", path == "/healthz", path == "/readyz", path == "/status":
	case pprofPath && h.opts.Pprof:
	case path == "/drain":
		h.drain(w, r)
		return
	default:
		plain(w, http.StatusNotFound, "no such path: %s (this port serves %s)\n", path, paths)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !(pprofPath && r.Method == http.MethodPost) {
		w.Header().Set("Allow", "GET, HEAD")
		plain(w, http.StatusMethodNotAllowed, "method %s not allowed on %s: use GET\n", r.Method, path)
		return
	}
	switch path {
	case "/metrics":
		h.metrics.ServeHTTP(w, r)
	case "/healthz":
		plain(w, http.StatusOK, "ok\n")
	case "/readyz":
		h.ready(w)
	case "/status":
		h.status(w)
	default:
		if msg := h.refusal(r, "pprof"); msg != "" {
			plain(w, http.StatusForbidden, "%s\n", msg)
			return
		}
		if path == "/debug/pprof" {
			http.Redirect(w, r, "/debug/pprof/", http.StatusMovedPermanently)
			return
		}
		h.pprof.ServeHTTP(w, r)
	}
}

// refusal returns why r may not use what (pprof, drain), or "": those
// are served to loopback addresses, and to others presenting ops.token.
func (h *handler) refusal(r *http.Request, what string) string {
	if isLoopback(r.RemoteAddr) {
		return ""
	}
	if h.opts.Token == "" {
		return what + " is served to loopback addresses only (set ops.token to allow others with a bearer token)"
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(h.opts.Token)) != 1 {
		return what + " from a non-loopback address needs \"Authorization: Bearer <ops.token>\""
	}
	return ""
}

// drain answers POST /drain: 202 once every server has begun draining,
// 409 when one was already draining or has stopped (the others still
// begin), 403 as pprof is refused, 405 for another method.
func (h *handler) drain(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		plain(w, http.StatusMethodNotAllowed, "method %s not allowed on /drain: use POST\n", r.Method)
		return
	}
	if msg := h.refusal(r, "drain"); msg != "" {
		plain(w, http.StatusForbidden, "%s\n", msg)
		return
	}
	if len(h.servers) == 0 {
		plain(w, http.StatusConflict, "no server to drain\n")
		return
	}
	var b strings.Builder
	code := http.StatusAccepted
	for _, s := range h.servers {
		switch err := s.BeginDrain(); {
		case err == nil:
			fmt.Fprintf(&b, "%s: draining\n", s.ID())
		case errors.Is(err, cluster.ErrDraining):
			code = http.StatusConflict
			fmt.Fprintf(&b, "%s: already draining\n", s.ID())
		case errors.Is(err, cluster.ErrServerClosed):
			code = http.StatusConflict
			fmt.Fprintf(&b, "%s: not running\n", s.ID())
		default:
			code = http.StatusConflict
			fmt.Fprintf(&b, "%s: %v\n", s.ID(), err)
		}
	}
	plain(w, code, "%s", b.String())
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (h *handler) ready(w http.ResponseWriter) {
	for _, s := range h.servers {
		if err := s.Ready(); err != nil {
			plain(w, http.StatusServiceUnavailable, "%s: %v\n", s.ID(), err)
			return
		}
	}
	if len(h.servers) == 0 {
		plain(w, http.StatusServiceUnavailable, "not ready: no server\n")
		return
	}
	plain(w, http.StatusOK, "ready\n")
}

func plain(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintf(w, format, args...)
}

// Listener is a running operations listener.
type Listener struct {
	srv *http.Server
	ln  net.Listener
}

// Listen opens addr ("127.0.0.1:0" when empty) and serves h on it until
// Close.
func Listen(addr string, h http.Handler) (*Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrListen, err)
	}
	l := &Listener{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go l.srv.Serve(ln)
	return l, nil
}

// Addr returns the address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// URL returns the listener's base URL, like "http://127.0.0.1:41234".
func (l *Listener) URL() string { return "http://" + l.ln.Addr().String() }

// Close stops the listener, waiting up to a second for requests in
// flight (a pprof profile may be cut short). Closing a nil Listener does
// nothing.
func (l *Listener) Close() error {
	if l == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := l.srv.Shutdown(ctx); err != nil {
		return l.srv.Close()
	}
	return nil
}

// writeJSON writes v as indented JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
