package plugins

import (
	"errors"
	"fmt"
)

// Attachment is what Info.Attach is given: a plugin of an upstream group,
// seen from a server whose group connects to that group. The cloud memory
// attaches its caller side this way to every server that connects to a
// cloud-memory group.
//
// A server hosts at most one attachment of each plugin: a group that
// connects to two groups running the same attaching plugin fails to start,
// naming both. Logs name an attached plugin "<plugin>@<group>".
type Attachment struct {
	// Group is the upstream group that runs the plugin.
	Group string
	// Spec is the plugin's entry in that group, settings included, so the
	// attached value can follow the same settings (Spec.Decode).
	Spec Spec
}

// Attach makes the attached plugin for a, when the plugin a.Spec names is
// registered with an Attach function: it calls it, then the value's
// Validate. ok is false when there is nothing to attach (an unknown name
// is reported by Provision, on the group that lists it). Every error names
// the spec's file and line, the groups involved, and wraps ErrSettings.
func Attach(a Attachment) (p Plugin, ok bool, err error) {
	info, found := Lookup(a.Spec.Name)
	if !found || info.Attach == nil {
		return nil, false, nil
	}
	p, err = safeAttach(info.Attach, a)
	if err == nil {
		if v, isV := p.(Validator); isV {
			err = safeValidate(v)
		}
	}
	switch {
	case errors.Is(err, ErrSettings): // Spec.Decode's, which says where
		return nil, false, fmt.Errorf("%w (attached from group %q)", err, a.Group)
	case err != nil:
		return nil, false, fmt.Errorf("%splugin %q attached from group %q: %w: %w", a.Spec.where(), a.Spec.Name, a.Group, ErrSettings, err)
	}
	return p, true, nil
}

func safeAttach(attach func(Attachment) (Plugin, error), a Attachment) (p Plugin, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("Attach panicked: %v", r)
		}
	}()
	p, err = attach(a)
	if err == nil && p == nil {
		err = errors.New("Attach returned no plugin")
	}
	return p, err
}
