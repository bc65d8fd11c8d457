package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
)

// A group's directory: GET /servers on the client port of any of its
// servers lists the group's servers with their load (docs/PROTOCOL.md).
// A Reconnector with a Directory asks it before every connection and
// tries the least loaded server that is not draining first.

// maxDirectoryBytes bounds the directory answer a client reads.
const maxDirectoryBytes = 4 << 20

// ErrDirectory is wrapped by every failure to fetch or read a directory.
var ErrDirectory = errors.New("client: directory")

// Directory is a group's directory: its servers, least loaded first.
type Directory struct {
	Group   string            `json:"group"`
	Servers []DirectoryServer `json:"servers"`
	// Partial: the load of some server could not be learned (its Players
	// is -1); it is listed all the same.
	Partial bool `json:"partial"`
}

// DirectoryServer is one server of a directory.
type DirectoryServer struct {
	ID       string `json:"id"`
	URL      string `json:"url"`      // the server's WebSocket endpoint
	Players  int    `json:"players"`  // clients it holds; -1: unknown
	Capacity int    `json:"capacity"` // the most it accepts; 0: no limit
	Draining bool   `json:"draining"` // it takes no new clients
}

// URLs returns the WebSocket URLs of the servers that are not draining,
// least loaded first (by players/capacity, then players; unknown loads
// last; the directory's order between equals).
func (d *Directory) URLs() []string {
	servers := slices.Clone(d.Servers)
	servers = slices.DeleteFunc(servers, func(s DirectoryServer) bool { return s.Draining || s.URL == "" })
	slices.SortStableFunc(servers, func(a, b DirectoryServer) int {
		la, lb := a.load(), b.load()
		switch {
		case la < lb:
			return -1
		case la > lb:
			return 1
		}
		return 0
	})
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = s.URL
	}
	return out
}

// load orders servers: the share of capacity used, or the players count
// for a server without a limit (past every share), unknown last.
func (s DirectoryServer) load() float64 {
	switch {
	case s.Players < 0:
		return 1e18
	case s.Capacity > 0:
		return float64(s.Players) / float64(s.Capacity)
	}
	return 1 + float64(s.Players)
}

// FetchDirectory reads the directory at u (http:// or https://
// host:port/servers) with hc (nil: http.DefaultClient), within ctx. Its
// errors wrap ErrDirectory.
func FetchDirectory(ctx context.Context, hc *http.Client, u string) (*Directory, error) {
	if err := checkDirectoryURL(u); err != nil {
		return nil, err
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrDirectory, u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDirectory, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%w: %s: HTTP %s", ErrDirectory, u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDirectoryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrDirectory, u, err)
	}
	if len(body) > maxDirectoryBytes {
		return nil, fmt.Errorf("%w: %s: answer over %d bytes", ErrDirectory, u, maxDirectoryBytes)
	}
	var d Directory
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrDirectory, u, err)
	}
	return &d, nil
}

// checkDirectoryURL checks that u is an http(s) URL with a host.
func checkDirectoryURL(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDirectory, err)
	}
	if (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("%w: URL %q: want http(s)://host:port/servers", ErrDirectory, u)
	}
	return nil
}

// checkWSURL checks that u is a ws:// or wss:// URL with a host.
func checkWSURL(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return err
	}
	if p.Scheme != "ws" && p.Scheme != "wss" {
		return fmt.Errorf("%q: scheme must be ws or wss", u)
	}
	if p.Host == "" {
		return fmt.Errorf("%q: no host", u)
	}
	return nil
}
