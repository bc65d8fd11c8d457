package plugins

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/internal/yamlx"
)

// ErrSettings is wrapped by every error about a plugin's name or settings.
var ErrSettings = errors.New("plugins: bad plugin settings")

// Spec names a plugin and its raw settings, as the system file gives them.
type Spec struct {
	Name string
	// Settings is the raw `settings:` node; Kind 0 when absent.
	Settings yaml.Node
	// File and Line locate the spec in the system file for messages; both
	// may be zero.
	File string
	Line int
}

func (s Spec) where() string {
	switch {
	case s.File != "" && s.Line > 0:
		return fmt.Sprintf("%s:%d: ", s.File, s.Line)
	case s.File != "":
		return s.File + ": "
	}
	return ""
}

// Provision makes a fresh plugin for spec: it looks the name up, decodes the
// settings strictly into the new value, and runs Validate. Every error names
// the file and line and wraps ErrSettings.
func Provision(spec Spec) (Plugin, error) {
	info, ok := Lookup(spec.Name)
	if !ok {
		return nil, fmt.Errorf("%splugin %q: %w: no such plugin is compiled into this binary (have: %s)",
			spec.where(), spec.Name, ErrSettings, strings.Join(Names(), ", "))
	}
	p := info.New()
	if err := spec.Decode(p); err != nil {
		return nil, err
	}
	if v, ok := p.(Validator); ok {
		if err := safeValidate(v); err != nil {
			return nil, fmt.Errorf("%splugin %q: %w: %w", spec.where(), spec.Name, ErrSettings, err)
		}
	}
	return p, nil
}

// Decode decodes the spec's settings into out (a non-nil pointer) with
// DecodeStrict; absent settings leave out as it is. The error names the
// file and line and wraps ErrSettings. Provision decodes a plugin's
// settings with it; an Info.Attach function decodes its Attachment's.
func (s Spec) Decode(out any) error {
	if yamlx.IsAbsent(&s.Settings) {
		return nil
	}
	if err := DecodeStrict(&s.Settings, out); err != nil {
		return fmt.Errorf("%splugin %q: %w: %w", whereNode(s, &s.Settings), s.Name, ErrSettings, err)
	}
	return nil
}

func safeValidate(v Validator) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("Validate panicked: %v", r)
		}
	}()
	return v.Validate()
}

func whereNode(spec Spec, n *yaml.Node) string {
	if n.Line > 0 {
		spec.Line = n.Line
	}
	return spec.where()
}

// DecodeStrict decodes n into out (a non-nil pointer) like yaml.v3's
// Node.Decode, but first rejects any mapping key that out's type does not
// have and any repeated key, naming the key's line ("line N: ..."). Maps
// accept any key; their values are checked against the map's element type.
// The system file and registry connector settings follow the same rules.
func DecodeStrict(n *yaml.Node, out any) error {
	return yamlx.DecodeStrict(n, out)
}
