package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/cloudrift/cloudrift/internal/yamlx"
	"github.com/cloudrift/cloudrift/protocol"
)

// Defaults and limits.
const (
	DefaultListen           = "127.0.0.1:0"
	DefaultReplicas         = 1
	MaxReplicas             = 1000
	MinSecretBytes          = 16
	DefaultHandshakeTimeout = Duration(5 * time.Second)
	DefaultHeartbeat        = Duration(time.Second)
	DefaultTimeout          = Duration(5 * time.Second)
	DefaultMaxFrame         = protocol.DefaultMaxFrame
	MinMaxFrame             = 64
	MaxMaxFrame             = 64 << 20
	DefaultQueueBytes       = 8 << 20
	DefaultBackoffMin       = Duration(100 * time.Millisecond)
	DefaultBackoffMax       = Duration(5 * time.Second)
	DefaultLeaveGrace       = Duration(5 * time.Second)
	DefaultStartTimeout     = Duration(3 * time.Minute)
)

// applyDefaults fills zero fields. A numeric field that pos says was written
// in the file keeps its written zero, so the checker reports it; empty
// strings always take their default.
func applyDefaults(s *System, pos positions) {
	unset := func(path string) bool { return !pos.has(path) }
	if s.Registry.Type == "" {
		s.Registry.Type = RegistryEmbedded
	}
	if s.Registry.StartTimeout == 0 && unset("registry.startTimeout") {
		s.Registry.StartTimeout = DefaultStartTimeout
	}
	l := &s.Links
	if l.HandshakeTimeout == 0 && unset("links.handshakeTimeout") {
		l.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if l.Heartbeat == 0 && unset("links.heartbeat") {
		l.Heartbeat = DefaultHeartbeat
	}
	if l.Timeout == 0 && unset("links.timeout") {
		l.Timeout = max(DefaultTimeout, 5*l.Heartbeat)
	}
	if l.MaxFrame == 0 && unset("links.maxFrame") {
		l.MaxFrame = DefaultMaxFrame
	}
	if l.QueueBytes == 0 && unset("links.queueBytes") {
		l.QueueBytes = max(DefaultQueueBytes, l.MaxFrame)
	}
	if l.BackoffMin == 0 && unset("links.backoffMin") {
		l.BackoffMin = DefaultBackoffMin
	}
	if l.BackoffMax == 0 && unset("links.backoffMax") {
		l.BackoffMax = max(DefaultBackoffMax, l.BackoffMin)
	}
	if l.LeaveGrace == 0 && unset("links.leaveGrace") {
		l.LeaveGrace = DefaultLeaveGrace
	}
	for i := range s.Groups {
		g := &s.Groups[i]
		if g.Listen == "" {
			g.Listen = DefaultListen
		}
		if g.Ops.Listen == "" {
			g.Ops.Listen = DefaultListen
		}
		if g.Replicas == 0 && unset("groups."+strconv.Itoa(i)+".replicas") {
			g.Replicas = DefaultReplicas
		}
		applyClientDefaults(&g.Clients, "groups."+strconv.Itoa(i)+".clients.", unset)
	}
}

// checker applies defaults and the rules to a System, collecting problems.
type checker struct {
	file string
	pos  positions // nil for a System built in Go
	errs []*Error
}

// add records a problem at path's position (fallback line when unknown).
// A path whose value already failed to decode is not reported again.
func (c *checker) add(path string, fallback int, ctx, format string, args ...any) {
	if c.pos.bad(path) {
		return
	}
	line, col := c.pos.at(path, fallback)
	msg := fmt.Sprintf(format, args...)
	if ctx != "" {
		msg = ctx + ": " + msg
	}
	c.errs = append(c.errs, &Error{File: c.file, Line: line, Column: col, Msg: msg})
}

func (c *checker) check(s *System) {
	applyDefaults(s, c.pos)
	c.top(s)
	c.registry(s)
	c.links(&s.Links, s.Line)
	c.groups(s)
}

func (c *checker) top(s *System) {
	switch {
	case s.System == "":
		c.add("system", s.Line, "", `missing "system": the system's name`)
	case !validName(s.System):
		c.add("system", s.Line, "", "system name %q %s", s.System, nameRule)
	}
	switch {
	case s.Secret == "":
		c.add("secret", s.Line, "", `missing "secret": at least %d bytes shared by all servers`, MinSecretBytes)
	case len(s.Secret) < MinSecretBytes:
		// The value stays out of the message: it is a secret.
		c.add("secret", s.Line, "", "secret is too short (%d bytes): use at least %d", len(s.Secret), MinSecretBytes)
	}
	if len(s.Groups) == 0 {
		c.add("groups", s.Line, "", `missing "groups": a system has at least one group`)
	}
}

// registry checks the registry type's shape only: which types exist
// depends on the connectors compiled into the binary (package registry).
func (c *checker) registry(s *System) {
	r := &s.Registry
	line := r.Line
	if line == 0 {
		line = s.Line
	}
	if !validName(r.Type) {
		c.add("registry.type", line, "registry", "type %q %s", r.Type, nameRule)
	}
	if r.StartTimeout < 0 {
		c.add("registry.startTimeout", line, "registry", "startTimeout %q must not be negative", r.StartTimeout)
	}
}

func (c *checker) links(l *Links, line int) {
	const ctx = "links"
	positive := func(path, key string, d Duration) {
		if d <= 0 {
			c.add(path, line, ctx, "%s %q must be greater than zero", key, d)
		}
	}
	positive("links.handshakeTimeout", "handshakeTimeout", l.HandshakeTimeout)
	positive("links.heartbeat", "heartbeat", l.Heartbeat)
	positive("links.backoffMin", "backoffMin", l.BackoffMin)
	if l.Timeout <= l.Heartbeat && !c.pos.bad("links.heartbeat") {
		c.add("links.timeout", line, ctx, "timeout %q must be greater than heartbeat %q", l.Timeout, l.Heartbeat)
	}
	if l.MaxFrame < MinMaxFrame || l.MaxFrame > MaxMaxFrame {
		c.add("links.maxFrame", line, ctx, "maxFrame %d is out of range (%d..%d)", l.MaxFrame, MinMaxFrame, MaxMaxFrame)
	}
	if l.QueueBytes < l.MaxFrame && !c.pos.bad("links.maxFrame") {
		c.add("links.queueBytes", line, ctx, "queueBytes %d must be at least maxFrame %d", l.QueueBytes, l.MaxFrame)
	}
	if l.LeaveGrace < 0 {
		c.add("links.leaveGrace", line, ctx, "leaveGrace %q must not be negative", l.LeaveGrace)
	}
	if l.BackoffMax < l.BackoffMin && !c.pos.bad("links.backoffMin") {
		c.add("links.backoffMax", line, ctx, "backoffMax %q must be at least backoffMin %q", l.BackoffMax, l.BackoffMin)
	}
	if l.TLS.Enabled() || l.TLS.Line > 0 {
		c.tls(l.TLS, "links.tls", line, ctx+": tls", true)
	}
}

// tls checks a tls mapping: certFile and keyFile always, caFile where the
// peers present certificates (links) and nowhere else.
func (c *checker) tls(t TLS, base string, fallback int, ctx string, needCA bool) {
	line := t.Line
	if line == 0 {
		line = fallback
	}
	if t.CertFile == "" {
		c.add(base+".certFile", line, ctx, `missing "certFile": the PEM certificate chain this end presents`)
	}
	if t.KeyFile == "" {
		c.add(base+".keyFile", line, ctx, `missing "keyFile": the PEM private key of certFile`)
	}
	switch {
	case needCA && t.CAFile == "":
		c.add(base+".caFile", line, ctx, `missing "caFile": the PEM certificates that sign every server's certificate`)
	case !needCA && t.CAFile != "":
		c.add(base+".caFile", line, ctx, "caFile %q: game clients present no certificate, so clients.tls takes none", t.CAFile)
	}
}

const nameRule = "is invalid: use lowercase letters, digits, '-' and '_', starting with a letter or digit, at most 63 characters"

// validName reports whether s matches [a-z0-9][a-z0-9_-]{0,62}.
func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= '0' && ch <= '9':
		case (ch == '-' || ch == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

func groupCtx(g *Group, i int) string {
	if g.Name == "" {
		return fmt.Sprintf("groups[%d]", i)
	}
	return fmt.Sprintf("group %q", g.Name)
}

func (c *checker) groups(s *System) {
	first := map[string]int{} // name -> index of its first group
	for i := range s.Groups {
		g := &s.Groups[i]
		base := "groups." + strconv.Itoa(i)
		ctx := groupCtx(g, i)
		switch {
		case g.Name == "":
			c.add(base+".name", g.Line, ctx, `missing "name"`)
		case !validName(g.Name):
			c.add(base+".name", g.Line, ctx, "name %q %s", g.Name, nameRule)
		}
		if j, dup := first[g.Name]; dup && g.Name != "" {
			where := "defined twice"
			if l, _ := c.pos.at("groups."+strconv.Itoa(j)+".name", s.Groups[j].Line); l > 0 {
				where = fmt.Sprintf("first defined at line %d", l)
			}
			c.add(base+".name", g.Line, ctx, "duplicate group name %q, %s", g.Name, where)
		} else if !dup {
			first[g.Name] = i
		}
		switch g.Visibility {
		case Internal, External:
		case "":
			c.add(base+".visibility", g.Line, ctx, `missing "visibility": %q or %q`, External, Internal)
		default:
			c.add(base+".visibility", g.Line, ctx, "visibility %q is not %q or %q", g.Visibility, External, Internal)
		}
		if msg := checkListen(g.Listen); msg != "" {
			c.add(base+".listen", g.Line, ctx, "listen %q %s", g.Listen, msg)
		}
		if msg := checkListen(g.Ops.Listen); msg != "" {
			c.add(base+".ops.listen", max(g.Ops.Line, g.Line), ctx, "ops: listen %q %s", g.Ops.Listen, msg)
		}
		if g.Replicas < 1 || g.Replicas > MaxReplicas {
			c.add(base+".replicas", g.Line, ctx, "replicas %d is out of range (1..%d)", g.Replicas, MaxReplicas)
		}
		c.clients(g, base, ctx)
		c.plugins(g, base, ctx)
	}
	edges := c.connections(s, first)
	c.cycles(s, edges)
}

// checkListen returns what is wrong with a host:port, or "".
func checkListen(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "is not host:port (like \"127.0.0.1:7350\" or \":7350\")"
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("has port %q: want a number from 0 to 65535", port)
	}
	return ""
}

func (c *checker) plugins(g *Group, base, ctx string) {
	seen := map[string]int{}
	for k := range g.Plugins {
		p := &g.Plugins[k]
		path := base + ".plugins." + strconv.Itoa(k)
		line := p.Line
		if line == 0 {
			line = g.Line
		}
		if p.Name == "" {
			c.add(path+".name", line, ctx, "plugins[%d]: missing plugin \"name\"", k)
			continue
		}
		if j, dup := seen[p.Name]; dup {
			where := "listed twice"
			if l := g.Plugins[j].Line; l > 0 {
				where = fmt.Sprintf("listed twice (first at line %d)", l)
			}
			c.add(path+".name", line, ctx, "plugin %q is %s", p.Name, where)
			continue
		}
		seen[p.Name] = k
	}
}

// edge is one valid connectsTo entry: group from dials group to.
type edge struct {
	to   int
	path string // position of the connectsTo entry
}

// connections checks every connectsTo entry and returns the valid ones per
// group index.
func (c *checker) connections(s *System, first map[string]int) [][]edge {
	edges := make([][]edge, len(s.Groups))
	for i := range s.Groups {
		g := &s.Groups[i]
		base := "groups." + strconv.Itoa(i) + ".connectsTo."
		ctx := groupCtx(g, i)
		seen := map[string]bool{}
		for k, target := range g.ConnectsTo {
			path := base + strconv.Itoa(k)
			j, exists := first[target]
			switch {
			case target == "":
				c.add(path, g.Line, ctx, "connectsTo entry %d is empty", k)
			case target == g.Name:
				c.add(path, g.Line, ctx, "connectsTo %q: a group cannot connect to itself", target)
			case seen[target]:
				c.add(path, g.Line, ctx, "connectsTo %q is listed twice", target)
			case !exists:
				msg := "no such group"
				if sug := yamlx.Suggest(target, groupNames(s)); sug != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", sug)
				}
				c.add(path, g.Line, ctx, "connectsTo %q: %s", target, msg)
			case s.Groups[j].Visibility == External:
				c.add(path, g.Line, ctx, "connectsTo %q: %q is external, and external groups accept no servers", target, target)
			default:
				edges[i] = append(edges[i], edge{to: j, path: path})
			}
			seen[target] = true
		}
	}
	return edges
}

func groupNames(s *System) []string {
	names := make([]string, 0, len(s.Groups))
	for _, g := range s.Groups {
		if g.Name != "" {
			names = append(names, g.Name)
		}
	}
	return names
}

// cycles reports every connectsTo entry that closes a cycle, found by a
// depth-first search in file order, at the entry's position.
func (c *checker) cycles(s *System, edges [][]edge) {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(s.Groups))
	var stack []int
	var visit func(u int)
	visit = func(u int) {
		color[u] = grey
		stack = append(stack, u)
		for _, e := range edges[u] {
			switch color[e.to] {
			case white:
				visit(e.to)
			case grey:
				var names []string
				for k := len(stack) - 1; k >= 0; k-- {
					if stack[k] == e.to {
						for _, v := range stack[k:] {
							names = append(names, s.Groups[v].Name)
						}
						break
					}
				}
				names = append(names, s.Groups[e.to].Name)
				g := &s.Groups[u]
				c.add(e.path, g.Line, groupCtx(g, u), "connectsTo %q makes a cycle: %s",
					s.Groups[e.to].Name, strings.Join(names, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		color[u] = black
	}
	for i := range s.Groups {
		if color[i] == white {
			visit(i)
		}
	}
}

func applyClientDefaults(c *Clients, base string, unset func(string) bool) {
	if c.Path == "" {
		c.Path = DefaultClientPath
	}
	ints := []struct {
		v   *int
		key string
		def int
	}{
		{&c.MaxMessageBytes, "maxMessageBytes", DefaultMaxMessageBytes},
		{&c.Rate, "rate", DefaultClientRate},
		{&c.MaxClients, "maxClients", DefaultMaxClients},
		{&c.SendQueueBytes, "sendQueueBytes", DefaultSendQueueBytes},
	}
	for _, f := range ints {
		if *f.v == 0 && unset(base+f.key) {
			*f.v = f.def
		}
	}
	if c.Burst == 0 && unset(base+"burst") {
		c.Burst = max(2*c.Rate, 1)
	}
	if c.ReadTimeout == 0 && unset(base+"readTimeout") {
		c.ReadTimeout = DefaultClientReadTimeout
	}
	if c.WriteTimeout == 0 && unset(base+"writeTimeout") {
		c.WriteTimeout = DefaultClientWriteTimeout
	}
	if c.DrainTimeout == 0 && unset(base+"drainTimeout") {
		c.DrainTimeout = DefaultClientDrainTimeout
	}
}

func (c *checker) clients(g *Group, base, ctx string) {
	base += ".clients"
	ctx += ": clients"
	cl := &g.Clients
	line := cl.Line
	if line == 0 {
		line = g.Line
	}
	if cl.Line > 0 && g.Visibility == Internal {
		c.add(base, line, ctx, "only external groups accept game clients; group %q is internal", g.Name)
	}
	if !strings.HasPrefix(cl.Path, "/") {
		c.add(base+".path", line, ctx, "path %q must start with '/'", cl.Path)
	}
	if cl.Path == "/servers" || cl.Path == "/load" {
		c.add(base+".path", line, ctx, "path %q is the group directory's (GET /servers, /load on the client port): choose another", cl.Path)
	}
	atLeast := func(key string, v, lo int) {
		if v < lo {
			c.add(base+"."+key, line, ctx, "%s %d must be at least %d", key, v, lo)
		}
	}
	atLeast("maxMessageBytes", cl.MaxMessageBytes, 1)
	atLeast("rate", cl.Rate, 1)
	atLeast("burst", cl.Burst, 1)
	atLeast("maxClients", cl.MaxClients, 1)
	atLeast("sendQueueBytes", cl.SendQueueBytes, cl.MaxMessageBytes)
	if cl.ReadTimeout < Duration(time.Second) {
		c.add(base+".readTimeout", line, ctx, "readTimeout %q must be at least 1s", cl.ReadTimeout)
	}
	if cl.WriteTimeout <= 0 {
		c.add(base+".writeTimeout", line, ctx, "writeTimeout %q must be greater than zero", cl.WriteTimeout)
	}
	if cl.DrainTimeout < 0 {
		c.add(base+".drainTimeout", line, ctx, "drainTimeout %q must not be negative", cl.DrainTimeout)
	}
	if cl.TLS.Enabled() || cl.TLS.Line > 0 {
		c.tls(cl.TLS, base+".tls", line, ctx+": tls", false)
	}
}
