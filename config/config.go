// Package config reads and validates a cloudrift system file (cluster.yaml).
//
// A system file declares every group of a system: its name, visibility,
// listen address, the groups it connects to, its replica count and its
// plugins. Load and Parse decode the file strictly (an unknown key is an
// error at every level; a plugin's and the registry's settings are kept raw
// and decoded just as strictly by the plugin or connector), expand ${VAR}
// references from the environment, apply defaults and check the topology
// rules. Every problem carries the file and line it comes from, and all
// problems of a file are reported together.
//
// The structs are plain data. A System built in Go code instead of a file is
// checked with Validate, which applies the same defaults and rules; its
// messages carry no line numbers.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrInvalid is matched (with errors.Is) by every error that Load, Parse and
// Validate report about the content of a system file.
var ErrInvalid = errors.New("config: invalid system file")

// Error is one problem in a system file. Load, Parse and Validate return all
// the problems they find joined into one error (see errors.Join), ordered by
// line; errors.As with a *Error finds the first.
type Error struct {
	File   string // the file name given to Parse or Load; "" prints as "<system>"
	Line   int    // 1-based line of the offending value; 0 when unknown
	Column int    // 1-based column of the offending value; 0 when unknown
	Msg    string // what is wrong, naming the offending value in quotes
}

// Error formats the problem as "file:line: message", or "file: message" when
// the line is unknown.
func (e *Error) Error() string {
	file := e.File
	if file == "" {
		file = "<system>"
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", file, e.Line, e.Msg)
	}
	return file + ": " + e.Msg
}

// Is reports whether target is ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// System is one system file: every group, working together.
type System struct {
	// File is the name the system was loaded from; it only appears in
	// messages. Empty for a System built in Go code.
	File string
	// System is the system's name, shared by all its servers: a lowercase
	// letter or digit, then lowercase letters, digits, '-' or '_', at most 63
	// characters. Required.
	System string
	// Secret authenticates server links (HMAC over the handshake); it never
	// crosses the wire. Required, at least 16 bytes.
	Secret string
	// Registry selects the discovery connector. The zero value is the
	// embedded connector.
	Registry Registry
	// Links tunes server-to-server links. Zero fields take defaults.
	Links Links
	// Groups lists the system's groups in file order. At least one.
	Groups []Group
	// Line is the line of the file's top-level mapping; 0 when unknown.
	Line int
}

// Group returns the group named name, pointing into s.Groups.
func (s *System) Group(name string) (*Group, bool) {
	for i := range s.Groups {
		if s.Groups[i].Name == name {
			return &s.Groups[i], true
		}
	}
	return nil, false
}

// RegistryEmbedded is the registry type a System without one uses: the
// in-process connector of dev mode and tests.
const RegistryEmbedded = "embedded"

// Registry names the registry connector and holds its raw settings. The
// connector types a binary knows, and the settings each takes, are
// registered with package registry; config only checks the block's shape,
// and the connector decodes Settings strictly when it is opened.
type Registry struct {
	// Type names a registered connector ("embedded", "consul", or one a
	// studio's binary imports); "" means RegistryEmbedded.
	Type string
	// Settings is the raw `settings:` node, with ${VAR} expanded; Kind 0
	// when absent.
	Settings yaml.Node
	// StartTimeout bounds how long a starting server waits for its
	// registry: registering is retried, with backoff and a log line per
	// attempt, while the connector reports the registry unavailable
	// (registry.ErrUnavailable: not up yet, no leader), then the server
	// gives up. Zero means 3m; an explicit 0 in the file gives up at the
	// first failure.
	StartTimeout Duration
	// Line is the line of the registry mapping; 0 when unknown.
	Line int
}

// Links tunes server-to-server links. Every zero field takes its default.
type Links struct {
	// HandshakeTimeout bounds a link's handshake. Zero means 5s.
	HandshakeTimeout Duration
	// Heartbeat is the ping interval on an idle link. Zero means 1s.
	Heartbeat Duration
	// Timeout closes a link silent for this long; greater than Heartbeat.
	// Zero means 5s, or 5×Heartbeat when that is longer.
	Timeout Duration
	// MaxFrame limits a frame's length field, 64 bytes to 64 MiB. Zero
	// means protocol.DefaultMaxFrame (1 MiB).
	MaxFrame int
	// QueueBytes caps a link's outbound queue; at least MaxFrame. Over
	// half of it the link is busy and the read loops that feed it pause;
	// a send past it is refused (plugins.ErrBusy). Zero means 8 MiB, or
	// MaxFrame when that is larger.
	QueueBytes int
	// BackoffMin is the first reconnect delay. Zero means 100ms.
	BackoffMin Duration
	// BackoffMax caps the reconnect delay; at least BackoffMin. Zero means
	// 5s, or BackoffMin when that is longer.
	BackoffMax Duration
	// LeaveGrace is how long the registry must not list a server before
	// it counts as gone: a server's remote goes Left (once its link is
	// down too; a live link keeps it) and the own group's PeersChanged
	// list drops it. Joins apply at once. A registry that briefly forgets
	// its members (an agent restart) therefore changes nothing. Zero
	// means 5s; an explicit 0 applies every absence at once.
	LeaveGrace Duration
	// SocketDir is where servers on one host meet without TCP: a server
	// that accepts links also listens on a Unix socket there, named after
	// its advertised address, and a server dialling a peer whose socket it
	// finds there links over it instead (same handshake, secret and TLS;
	// a peer elsewhere is dialled over TCP as before). The directory must
	// belong to the server's user and be closed to others (mode 0700),
	// and is made so when missing; one that is not is passed over with a
	// warning and links stay on TCP. Zero means "cloudrift-links-<uid>"
	// in the system's temporary directory; "off" keeps every link on TCP.
	SocketDir string
	// TLS, when set, wraps every link in mutual TLS: each server presents
	// CertFile and checks its peer's certificate against CAFile. The zero
	// value means plain TCP (the HMAC handshake still authenticates).
	TLS TLS
}

// TLS names the PEM files of a TLS endpoint. Relative paths are relative
// to the server's working directory; ${VAR} in a path lets one system
// file name each server's own files. The certificate files are read again
// when they change, so a renewed certificate needs no restart.
type TLS struct {
	// CertFile holds the certificate chain, leaf first; KeyFile its
	// private key. Both or neither.
	CertFile, KeyFile string
	// CAFile holds the certificates that sign the peers' certificates.
	// Links require it; clients.tls takes none (game clients present no
	// certificate).
	CAFile string
	// Line is the line of the tls mapping; 0 when absent.
	Line int
}

// SocketDirOff is the links.socketDir value that keeps every link on TCP.
const SocketDirOff = "off"

// Enabled reports whether t asks for TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" || t.CAFile != "" }

// Visibility says who may connect to a group's servers.
type Visibility string

// Visibilities.
const (
	// Internal groups accept the servers of groups that connect to them,
	// never clients.
	Internal Visibility = "internal"
	// External groups accept game clients, never servers.
	External Visibility = "external"
)

// Group is a set of identical servers.
type Group struct {
	// Name is unique in the system; same characters as System.System.
	// Required.
	Name string
	// Visibility is Internal or External. Required.
	Visibility Visibility
	// Listen is the host:port servers of this group listen on (port 0 picks
	// a free port). "" means "127.0.0.1:0".
	Listen string
	// ConnectsTo names the internal groups this group's servers dial (its
	// upstream). The graph of all ConnectsTo has no cycles.
	ConnectsTo []string
	// Replicas is how many servers dev mode and deployment generators start,
	// 1 to 1000. Zero means 1.
	Replicas int
	// Clients sets the limits of an external group's game clients. Only
	// external groups may have a clients block; zero fields take defaults.
	Clients Clients
	// Plugins run on every server of the group; names are unique in the
	// group.
	Plugins []Plugin
	// Ops sets the group's operations listener (metrics, health, status).
	Ops Ops
	// Line is the line of the group's mapping; 0 when unknown.
	Line int
}

// ClientURL returns the WebSocket URL game clients dial on a server of g
// listening at addr: wss:// when clients.tls is set, ws:// otherwise, with
// the group's clients.path. It returns "" for an internal group.
func (g *Group) ClientURL(addr string) string {
	if g.Visibility != External {
		return ""
	}
	scheme := "ws://"
	if g.Clients.TLS.Enabled() {
		scheme = "wss://"
	}
	path := g.Clients.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return scheme + addr + path
}

// Ops is a group's operations listener: /metrics, /healthz, /readyz,
// /status and, when Pprof is set, /debug/pprof/. The command line may
// override Listen for one server.
type Ops struct {
	// Listen is the host:port the operations listener binds. "" means
	// "127.0.0.1:0" (loopback, a free port); the listener is started by
	// the command that runs the server.
	Listen string
	// Pprof serves /debug/pprof/. False: not served.
	Pprof bool
	// Token, when set, lets a request from a non-loopback address reach
	// /debug/pprof/ by presenting it as "Authorization: Bearer TOKEN".
	// Write it as ${VAR} so it comes from the environment. "": pprof is
	// served to loopback addresses only.
	Token string
	// Line is the line of the ops mapping; 0 when unknown.
	Line int
}

// Clients are the game-client settings of an external group. Each limit is
// enforced per client (per server for MaxClients); a client that breaks one
// is told the reason code and disconnected, and the others carry on.
type Clients struct {
	// Path is the WebSocket endpoint's URL path. "" means "/". "/servers"
	// and "/load" are the group directory's and not allowed.
	Path string
	// MaxMessageBytes is the largest message payload a client may send.
	// Zero means 16 KiB.
	MaxMessageBytes int
	// Rate is the sustained messages per second a client may send, and
	// Burst how many it may send at once (a token bucket). Zero Rate means
	// 100; zero Burst means 2×Rate.
	Rate, Burst int
	// MaxClients is the most clients one server holds. Zero means 10000.
	MaxClients int
	// ReadTimeout disconnects a client silent this long, or up to a
	// sixteenth longer (the server pings at a third of it, and a pong
	// counts). Zero means 30s; at least 1s.
	ReadTimeout Duration
	// WriteTimeout bounds one write to a client. Zero means 10s.
	WriteTimeout Duration
	// SendQueueBytes bounds the bytes queued for one client; past it the
	// client is slow and disconnected. Zero means 256 KiB.
	SendQueueBytes int
	// DrainTimeout is how long a draining server (cluster.Server.Drain,
	// SIGTERM to "cloudrift run", POST /drain on the operations port)
	// waits for its clients to move to other servers before it closes
	// the rest with reason Draining. Unset means 30s; an explicit 0s
	// means no wait: clients get the Move and the Close together.
	DrainTimeout Duration
	// AllowedOrigins lists the web origins (scheme://host[:port], compared
	// without regard to case) whose browser pages may open a client
	// connection, besides pages served from the same host as the client
	// port; "*" allows every origin. Requests without an Origin header
	// (game clients that are not browsers) are always allowed. Empty
	// means the same host only.
	AllowedOrigins []string
	// TLS, when set, makes the client port serve wss:// only: TLS with
	// CertFile and KeyFile, then the WebSocket upgrade. The zero value
	// means plain ws://.
	TLS TLS
	// Line is the line of the clients mapping; 0 when absent.
	Line int
}

// Client defaults.
const (
	DefaultClientPath         = "/"
	DefaultMaxMessageBytes    = 16 << 10
	DefaultClientRate         = 100
	DefaultMaxClients         = 10000
	DefaultSendQueueBytes     = 256 << 10
	DefaultClientReadTimeout  = Duration(30 * time.Second)
	DefaultClientWriteTimeout = Duration(10 * time.Second)
	DefaultClientDrainTimeout = Duration(30 * time.Second)
)

// Plugin names a group plugin and carries its raw settings.
type Plugin struct {
	// Name is the name the plugin registered under. Required.
	Name string
	// Settings is the plugin's settings node, with ${VAR} already expanded,
	// left for the plugin to decode strictly. Settings.Kind is 0 when the
	// file has no (or null) settings.
	Settings yaml.Node
	// Line is the line of the plugin's mapping; 0 when unknown.
	Line int
}

// Duration is a time.Duration written in YAML as a Go duration string such
// as "5s" or "250ms". A bare number is an error: durations need a unit.
type Duration time.Duration

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML decodes a duration string such as "5s". Plugins may use
// Duration in their settings structs.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, msg := parseDuration(n)
	if msg != "" {
		return fmt.Errorf("line %d: %s", n.Line, msg)
	}
	*d = v
	return nil
}

// MarshalYAML encodes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Load reads the system file at path and parses it with Parse, expanding
// ${VAR} from the process environment. An error reading the file does not
// match ErrInvalid.
func Load(path string) (*System, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse decodes, expands, defaults and validates a system file. file names
// the file in messages only. lookup resolves ${VAR} references (see below);
// nil means no variable is set.
//
// Every scalar value (not keys, not comments), including those in plugin
// settings, is expanded before it is interpreted:
//
//	${VAR}          the value of VAR; an error when VAR is not set
//	${VAR:-default} the value of VAR, or default (taken literally) when VAR is unset or empty
//	$$              a literal $
//
// Any other $ is kept as is, and substituted text is not expanded again. A
// plain (unquoted) scalar is typed after expansion, so "replicas: ${N:-2}"
// is an integer.
//
// In a file, a key that is present is validated as written: "replicas: 0" is
// an error, not the default. An empty string counts as absent.
//
// On any problem Parse returns a nil System and every problem found, as
// *Error values joined in line order; the error matches ErrInvalid.
func Parse(file string, data []byte, lookup func(string) (string, bool)) (*System, error) {
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	d := newDecoder(file)
	root, ok := d.parse(data)
	if !ok {
		return nil, d.result()
	}
	d.expandTree(root, "", lookup)
	s := d.system(root)
	c := checker{file: file, pos: d.pos}
	c.check(s)
	d.errs = append(d.errs, c.errs...)
	if err := d.result(); err != nil {
		return nil, err
	}
	return s, nil
}

// ApplyDefaults sets every zero field that has a default to that default.
func (s *System) ApplyDefaults() { applyDefaults(s, nil) }

// Validate applies defaults and checks s against the same rules as Parse,
// for a System built in Go code. Its messages carry the lines recorded in
// the structs (none for a System built in Go).
func (s *System) Validate() error {
	c := checker{file: s.File}
	c.check(s)
	return joinErrors(c.errs)
}
