// Package web is the open world's browser client: a page where a person
// plays in the open world with the TypeScript SDK (sdk/typescript), and the
// HTTP handler that serves it. The page draws the map around the player
// (the players it sees moving, the region borders and which world server
// owns each region), has a chat box, and, when given the server-directory
// example's client server, lists the game servers of that directory live.
//
// The page is plain HTML, CSS and JavaScript (static/), and imports the
// SDK's ES modules from static/sdk, which `go generate
// ./examples/openworld/web` writes with tsc (Debian's node-typescript)
// from sdk/typescript; the test command runs it, and TestEmbeddedSDK
// checks the modules are current. They are build output, not in the
// repository: a binary built without them serves the page with an error
// that says how to build them. The binary embeds everything it serves:
// nothing is fetched from elsewhere.
//
// The "web" command serves the page for a running system, and the dev hook
// serves it beside the system dev runs (Options adds both).
package web

//go:generate tsc -p ../../../sdk/typescript --outDir static/sdk --declaration false

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"slices"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/examples/openworld"
	"github.com/cloudrift/cloudrift/plugins"
)

//go:embed static
var static embed.FS

// Plugin names the page's configuration looks for in a system file.
const (
	gatewayPlugin = "gateway"
	worldPlugin   = "world"
)

// Config is what the page is told (at /config.json).
type Config struct {
	// URLs are the client servers' WebSocket endpoints; each tab joins one
	// of them at random unless its URL says ?server=N. Required.
	URLs []string `json:"urls"`
	// Regions is how many regions the map is split into (the world
	// plugin's regions setting). Zero means openworld.DefaultRegions.
	Regions int `json:"regions"`
	// Owners, when not empty, names the world server that owns each
	// region (Regions entries), as the gateways choose it while every
	// world server is linked. Empty: the page draws no owners.
	Owners []string `json:"owners"`
	// Directory, when set, is a client server of the server-directory
	// example (examples/directory): the page lists its game servers. A
	// page URL's ?directory= overrides it.
	Directory string `json:"directory,omitempty"`
	// DirectoryApp is the directory's application key. Empty means the
	// example's default.
	DirectoryApp string `json:"directoryApp,omitempty"`
	// MapSize is the map's side, openworld.MapSize (set by Handler).
	MapSize int `json:"mapSize"`
}

// DefaultDirectoryApp is the server-directory example's application key
// in its cluster.yaml.
const DefaultDirectoryApp = "directory-demo-7f3a"

// Handler serves the page and its configuration.
func Handler(cfg Config) http.Handler {
	cfg.MapSize = openworld.MapSize
	if cfg.Regions == 0 {
		cfg.Regions = openworld.DefaultRegions
	}
	if cfg.DirectoryApp == "" {
		cfg.DirectoryApp = DefaultDirectoryApp
	}
	body, err := json.Marshal(cfg)
	if err != nil {
		panic(err) // Config always marshals
	}
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree has static/
	}
	return pageHandler(files, body)
}

// pageHandler is Handler over the page's files and its configuration's JSON.
func pageHandler(files fs.FS, body []byte) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(body)
	})
	if _, err := fs.Stat(files, "sdk/index.js"); err != nil {
		mux.HandleFunc("GET /sdk/", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "the browser SDK was not built into this binary: run `go generate ./examples/openworld/web` (needs tsc, Debian's node-typescript) and build again", http.StatusNotImplemented)
		})
	}
	mux.Handle("GET /", http.FileServerFS(files))
	return mux
}

// ConfigOf builds the page's configuration from a system file and the
// URLs of its client servers: the world servers are the replicas of the
// groups that run the world plugin, named as dev and the deployment
// generators name them (GROUP-1, GROUP-2, ...), and the regions are that
// plugin's setting.
func ConfigOf(sys *config.System, urls []string) (Config, error) {
	cfg := Config{URLs: urls}
	var worlds []serverID
	for _, g := range sys.Groups {
		i := slices.IndexFunc(g.Plugins, func(p config.Plugin) bool { return p.Name == worldPlugin })
		if i < 0 {
			continue
		}
		w := openworld.NewWorld()
		if g.Plugins[i].Settings.Kind != 0 {
			if err := plugins.DecodeStrict(&g.Plugins[i].Settings, w); err != nil {
				return cfg, fmt.Errorf("group %s: world settings: %w", g.Name, err)
			}
		}
		cfg.Regions = w.Regions
		for r := range max(g.Replicas, 1) {
			worlds = append(worlds, serverID(fmt.Sprintf("%s-%d", g.Name, r+1)))
		}
	}
	if len(worlds) > 0 {
		for r := range cfg.Regions {
			cfg.Owners = append(cfg.Owners, string(openworld.Owner(worlds, r)))
		}
	}
	return cfg, nil
}

// serverID is a world server, as openworld.Owner takes it.
type serverID string

func (s serverID) ID() string { return string(s) }
