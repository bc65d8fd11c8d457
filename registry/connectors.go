package registry

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/internal/yamlx"
)

// Errors about the system file's registry block, wrapped with %w.
var (
	// ErrUnknownType is returned by Open and Check for a type no connector
	// of this binary registered.
	ErrUnknownType = errors.New("registry: unknown registry type")
	// ErrSettings is returned by Open and Check for settings that do not
	// decode into the connector's settings or fail their Validate.
	ErrSettings = errors.New("registry: bad registry settings")
)

// Options is what the runtime gives a connector's constructor besides its
// settings.
type Options struct {
	// System is the system name from the system file.
	System string
	// Logger receives the connector's logs. The zero value logs nothing.
	Logger zerolog.Logger
}

// Spec is the system file's registry block:
//
//	registry:
//	  type: consul
//	  settings: {address: 127.0.0.1:8500}
type Spec struct {
	// Type names a registered connector.
	Type string
	// Settings is the raw `settings:` node; Kind 0 when absent.
	Settings yaml.Node
	// File and Line locate the block for messages; both may be zero.
	File string
	Line int
}

// Validator checks a connector's decoded settings before it is opened.
type Validator interface {
	Validate() error
}

// connectorType is one registered connector: decode turns a settings node
// into the connector's validated *S; open makes the connector from it.
type connectorType struct {
	decode func(n *yaml.Node) (any, error)
	open   func(settings any, opts Options) (Connector, error)
}

var connectors = struct {
	sync.RWMutex
	m map[string]connectorType
}{m: make(map[string]connectorType)}

// Register makes a connector type available by name, as the system file's
// registry.type. S is the connector's settings, usually a struct with yaml
// tags: the block's `settings:` decode into a fresh *S strictly (an unknown
// or repeated key is an error naming its line), then S's Validate runs when
// *S has one, then open makes the connector. A connector without settings
// uses struct{}. Register is meant to be called from init and panics on a
// programmer error: an empty name, a nil open, or a name registered twice.
func Register[S any](name string, open func(settings *S, opts Options) (Connector, error)) {
	if name == "" {
		panic("registry: Register with an empty name")
	}
	if open == nil {
		panic(fmt.Sprintf("registry: Register %q with a nil open", name))
	}
	decode := func(n *yaml.Node) (any, error) {
		s := new(S)
		if !yamlx.IsAbsent(n) {
			if err := yamlx.DecodeStrict(n, s); err != nil {
				return nil, err
			}
		}
		if v, ok := any(s).(Validator); ok {
			if err := v.Validate(); err != nil {
				return nil, err
			}
		}
		return s, nil
	}
	t := connectorType{
		decode: decode,
		open:   func(s any, opts Options) (Connector, error) { return open(s.(*S), opts) },
	}
	connectors.Lock()
	defer connectors.Unlock()
	if _, dup := connectors.m[name]; dup {
		panic(fmt.Sprintf("registry: connector %q registered twice", name))
	}
	connectors.m[name] = t
}

// Names returns the names of every registered connector, sorted.
func Names() []string {
	connectors.RLock()
	defer connectors.RUnlock()
	return slices.Sorted(maps.Keys(connectors.m))
}

func lookup(spec Spec) (connectorType, error) {
	connectors.RLock()
	t, ok := connectors.m[spec.Type]
	connectors.RUnlock()
	if !ok {
		return t, fmt.Errorf("%sregistry type %q: %w: no such connector is compiled into this binary (have: %s)",
			where(spec.File, spec.Line), spec.Type, ErrUnknownType, strings.Join(Names(), ", "))
	}
	return t, nil
}

// Check decodes and validates spec's settings without opening a connector,
// as "cloudrift validate" does. Errors name the file and line.
func Check(spec Spec) error {
	t, err := lookup(spec)
	if err != nil {
		return err
	}
	if _, err := t.decode(&spec.Settings); err != nil {
		return spec.settingsError(err)
	}
	return nil
}

// Open makes the connector spec names with its decoded settings. Errors
// about the block name the file and line and wrap ErrUnknownType or
// ErrSettings; the constructor's own errors are wrapped as they are.
func Open(spec Spec, opts Options) (Connector, error) {
	t, err := lookup(spec)
	if err != nil {
		return nil, err
	}
	s, err := t.decode(&spec.Settings)
	if err != nil {
		return nil, spec.settingsError(err)
	}
	c, err := t.open(s, opts)
	if err != nil {
		return nil, fmt.Errorf("%sregistry %q: %w", where(spec.File, spec.Line), spec.Type, err)
	}
	return c, nil
}

func (spec Spec) settingsError(err error) error {
	line := spec.Line
	if spec.Settings.Line > 0 {
		line = spec.Settings.Line
	}
	return fmt.Errorf("%sregistry %q: %w: %w", where(spec.File, line), spec.Type, ErrSettings, err)
}

func where(file string, line int) string {
	switch {
	case file != "" && line > 0:
		return fmt.Sprintf("%s:%d: ", file, line)
	case file != "":
		return file + ": "
	}
	return ""
}
