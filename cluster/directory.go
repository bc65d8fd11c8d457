package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudrift/cloudrift/registry"
)

// The directory of an external group: every server of the group answers
// GET /servers on its client port with the group's servers, least loaded
// first, so a game client (or a load balancer's health page) can pick one,
// and a draining server names the same servers in its Moves.
//
// Members come from the registry (a watch of the server's own group). Their
// load does not: each server answers GET /load on its client port with its
// own players and capacity, and the directory asks the others concurrently
// (loadTimeout each) and keeps the answers for loadCacheTTL. Load changes
// every second; putting it in registry metadata would make every server
// write to the registry that often and wake every watcher of the group
// (the link dialers among them) with each write. A server whose load could
// not be learned is still listed, with Players -1, and the answer says it
// is partial.

// Meta keys and endpoints of the directory.
const (
	// MetaClientURL is the registry Meta key holding an external server's
	// client URL (ws:// or wss://, with clients.path).
	MetaClientURL = "url"
	// DirectoryPath and LoadPath are served on every external server's
	// client port, whatever clients.path is.
	DirectoryPath = "/servers"
	LoadPath      = "/load"
)

// loadTimeout bounds one GET /load; loadCacheTTL is how long answers are
// reused.
const (
	loadTimeout  = 500 * time.Millisecond
	loadCacheTTL = time.Second
)

// ServerLoad is one server of a Directory, and the answer of GET /load.
type ServerLoad struct {
	ID string `json:"id"`
	// URL is the client URL game clients dial.
	URL string `json:"url"`
	// Players is the number of connected game clients; -1 when unknown.
	Players int `json:"players"`
	// Capacity is the server's clients.maxClients (the group's, so known
	// even when Players is not).
	Capacity int  `json:"capacity"`
	Draining bool `json:"draining"`
}

// Directory is the answer of GET /servers: the group's servers sorted
// least loaded first (Players/Capacity; unknown load after known; draining
// servers last). Partial is set when the load of some server could not be
// learned.
type Directory struct {
	Group   string       `json:"group"`
	Servers []ServerLoad `json:"servers"`
	Partial bool         `json:"partial"`
}

// directory keeps an external server's view of its group.
type directory struct {
	s      *Server
	client *http.Client

	mu      sync.Mutex
	members []registry.Member // the latest snapshot of the own group

	fetch    sync.Mutex // one refresh at a time; guards the fields below
	cached   map[string]ServerLoad
	cachedAt time.Time
}

func newDirectory(s *Server) *directory {
	tr := &http.Transport{
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &directory{s: s, client: &http.Client{Transport: tr, Timeout: loadTimeout}}
}

// watchLoop keeps members up to date until the watch ends.
func (d *directory) watchLoop(ch <-chan []registry.Member) {
	defer d.client.CloseIdleConnections()
	for {
		select {
		case <-d.s.ctx.Done():
			return
		case ms, ok := <-ch:
			if !ok {
				return
			}
			d.mu.Lock()
			d.members = ms
			d.mu.Unlock()
		}
	}
}

// self is this server's own entry.
func (d *directory) self() ServerLoad {
	h := d.s.clients
	return ServerLoad{
		ID:       d.s.id,
		URL:      d.s.clientURL(),
		Players:  int(h.count.Load()),
		Capacity: h.cfg.MaxClients,
		Draining: d.s.Draining(),
	}
}

// list returns the directory, asking the other servers for their load
// when the cached answers are older than loadCacheTTL.
func (d *directory) list(ctx context.Context) Directory {
	d.mu.Lock()
	ms := d.members
	d.mu.Unlock()
	loads := d.loads(ctx, ms)
	dir := Directory{Group: d.s.group.Name, Servers: []ServerLoad{d.self()}}
	for _, m := range ms {
		if m.ID == d.s.id || m.Group != d.s.group.Name {
			continue
		}
		l, ok := loads[m.ID]
		if !ok {
			l = ServerLoad{ID: m.ID, URL: memberURL(d.s, m), Players: -1, Capacity: d.s.clients.cfg.MaxClients}
			dir.Partial = true
		}
		// The registry's word on draining is the newer one when the
		// server said it after its last /load answer.
		l.Draining = l.Draining || m.Meta[registry.MetaDraining] == "1"
		dir.Servers = append(dir.Servers, l)
	}
	slices.SortFunc(dir.Servers, compareLoad)
	return dir
}

// compareLoad orders servers least loaded first: not draining before
// draining, known load before unknown, then by Players/Capacity, then ID.
func compareLoad(a, b ServerLoad) int {
	if a.Draining != b.Draining {
		if a.Draining {
			return 1
		}
		return -1
	}
	au, bu := a.Players < 0, b.Players < 0
	if au != bu {
		if au {
			return 1
		}
		return -1
	}
	if !au {
		// a.P/a.C vs b.P/b.C without division; capacities are >= 1.
		if c := cmp.Compare(int64(a.Players)*int64(max(b.Capacity, 1)), int64(b.Players)*int64(max(a.Capacity, 1))); c != 0 {
			return c
		}
	}
	return strings.Compare(a.ID, b.ID)
}

// loads returns the load of the servers of ms other than this one that
// answered, from the cache when it is fresh.
func (d *directory) loads(ctx context.Context, ms []registry.Member) map[string]ServerLoad {
	d.fetch.Lock()
	defer d.fetch.Unlock()
	if d.cached != nil && time.Since(d.cachedAt) < loadCacheTTL {
		return d.cached
	}
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	var (
		mu  sync.Mutex
		got = make(map[string]ServerLoad)
		wg  sync.WaitGroup
	)
	for _, m := range ms {
		if m.ID == d.s.id || m.Group != d.s.group.Name {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l, ok := d.fetchLoad(ctx, m); ok {
				mu.Lock()
				got[m.ID] = l
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	d.cached, d.cachedAt = got, time.Now()
	return got
}

// fetchLoad asks m for its load. It reports false when m did not answer
// in time, answered something else than a load, or answered as another
// server (the address now belongs to someone else).
func (d *directory) fetchLoad(ctx context.Context, m registry.Member) (ServerLoad, bool) {
	u := loadURL(memberURL(d.s, m))
	if u == "" {
		return ServerLoad{}, false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return ServerLoad{}, false
	}
	resp, err := d.client.Do(req)
	if err != nil {
		d.s.log.Debug().Err(err).Str("peer", m.ID).Msg("directory: load not learned")
		return ServerLoad{}, false
	}
	defer resp.Body.Close()
	var l ServerLoad
	dec := json.NewDecoder(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK || dec.Decode(&l) != nil || l.ID != m.ID || l.Players < 0 || l.Capacity < 1 {
		d.s.log.Debug().Int("status", resp.StatusCode).Str("peer", m.ID).Msg("directory: load answer refused")
		return ServerLoad{}, false
	}
	l.URL = memberURL(d.s, m)
	return l, true
}

// moveURLs returns the client URLs of the group's other servers that are
// not draining, least loaded first: what a Move names.
func (d *directory) moveURLs(ctx context.Context) []string {
	var urls []string
	for _, l := range d.list(ctx).Servers {
		if l.ID != d.s.id && !l.Draining && l.URL != "" {
			urls = append(urls, l.URL)
		}
	}
	return urls
}

// memberURL is m's client URL: the one it registered, else the one its
// address gives with this group's settings.
func memberURL(s *Server, m registry.Member) string {
	if u := m.Meta[MetaClientURL]; u != "" {
		return u
	}
	return s.group.ClientURL(m.Address)
}

// loadURL turns a client URL into its server's /load URL; "" when it is
// not a ws:// or wss:// URL.
func loadURL(clientURL string) string {
	u, err := url.Parse(clientURL)
	if err != nil {
		return ""
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return ""
	}
	u.Path, u.RawPath, u.RawQuery, u.Fragment = LoadPath, "", "", ""
	return u.String()
}

// serveDirectory answers GET /servers and GET /load.
func (h *clientHub) serveDirectory(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "cloudrift: use GET", http.StatusMethodNotAllowed)
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		if !h.originAllowed(r) {
			http.Error(w, "cloudrift: origin not allowed", http.StatusForbidden)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Add("Vary", "Origin")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	var v any
	if r.URL.Path == LoadPath {
		v = h.s.dir.self()
	} else {
		v = h.s.dir.list(r.Context())
	}
	json.NewEncoder(w).Encode(v)
}
