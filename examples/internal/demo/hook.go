package demo

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cloudrift/cloudrift/cli"
	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/plugins"

	// Every example that runs a Hook runs the cloud memory: importing this
	// package compiles it (the "cloudmemory" plugin and the client every
	// server of a group that connects to it gets) into the binary.
	_ "github.com/cloudrift/cloudrift/plugins/cloudmemory"
)

// Simulation is what an example's dev mode runs: simulated clients of a
// running system, until ctx ends. Run calls report with one-line
// summaries, at most about once per interval (zero: the simulation's
// default), and returns an error only when it cannot start.
type Simulation interface {
	Run(ctx context.Context, interval time.Duration, report func(string)) error
}

// Hook runs an example's Simulation from the dev command: its Run is a
// cli.DevHook. Example, Guard, Bots and New are required.
type Hook struct {
	// Example names the example; it begins every line the hook reports
	// ("tasks: ...").
	Example string
	// Guard is the name of the example's guard plugin: the simulation uses
	// the client servers of the external groups that run it.
	Guard string
	// Settings, when not nil, is a pointer to the guard's settings type:
	// the guard's settings are decoded into it strictly (as the guard
	// itself decodes them) before New is called, so that New can read
	// them. When several groups run the guard, each decodes in turn over
	// the last. Nil: the settings are not read.
	Settings any
	// Bots says what the simulation's clients are, in the plural
	// ("workers"), for the hook's reports.
	Bots string
	// PerBot is how many simulated clients each of dev's -bots stands for.
	// Zero means 1.
	PerBot int
	// New returns the simulation of n clients against the client servers
	// at urls (never empty; n is at least 1).
	New func(urls []string, n int) Simulation
}

// Options returns the command-line options of an example's binary: h as
// its dev hook, and its own commands.
func Options(h Hook, commands ...cli.Command) []cli.Option {
	opts := []cli.Option{cli.WithDevHook(h.Run)}
	for _, c := range commands {
		opts = append(opts, cli.WithCommand(c))
	}
	return opts
}

// Run runs the simulation until ctx ends. It reports, and returns at once,
// when no external group runs the guard, when the guard's settings do not
// decode, or when dev's -bots is 0; it reports the simulation's start and,
// if Run fails, its error.
func (h Hook) Run(ctx context.Context, info cli.DevInfo) {
	urls, err := h.urls(info)
	if err != nil {
		info.Report(h.Example + ": " + err.Error())
		return
	}
	switch {
	case len(urls) == 0:
		info.Report(h.Example + ": no external group runs the " + h.Guard + " plugin")
		return
	case info.Bots == 0:
		info.Report(h.Example + ": -bots 0, no " + h.Bots)
		return
	}
	n := info.Bots * max(h.PerBot, 1)
	sim := h.New(urls, n)
	info.Report(fmt.Sprintf("%s: %d %s joining %d client servers", h.Example, n, h.Bots, len(urls)))
	if err := sim.Run(ctx, info.Interval, info.Report); err != nil {
		info.Report(err.Error())
	}
}

// urls returns the URLs of the client servers whose group runs the guard,
// decoding its settings into h.Settings when set.
func (h Hook) urls(info cli.DevInfo) ([]string, error) {
	var urls []string
	for _, cs := range info.ClientServers {
		g, ok := info.Config.Group(cs.Group)
		if !ok {
			continue
		}
		i := slices.IndexFunc(g.Plugins, func(p config.Plugin) bool { return p.Name == h.Guard })
		if i < 0 {
			continue
		}
		if h.Settings != nil {
			if err := plugins.DecodeStrict(&g.Plugins[i].Settings, h.Settings); err != nil {
				return nil, err
			}
		}
		urls = append(urls, cs.URL)
	}
	return urls, nil
}
