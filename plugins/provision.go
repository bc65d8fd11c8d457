package plugins

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
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
	if spec.Settings.Kind != 0 && !isNull(&spec.Settings) {
		if err := DecodeStrict(&spec.Settings, p); err != nil {
			return nil, fmt.Errorf("%splugin %q: %w: %w", whereNode(spec, &spec.Settings), spec.Name, ErrSettings, err)
		}
	}
	if v, ok := p.(Validator); ok {
		if err := safeValidate(v); err != nil {
			return nil, fmt.Errorf("%splugin %q: %w: %w", spec.where(), spec.Name, ErrSettings, err)
		}
	}
	return p, nil
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

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// DecodeStrict decodes n into out (a non-nil pointer) like yaml.v3's
// Node.Decode, but first rejects any mapping key that out's type does not
// have, naming the key's line. Maps accept any key; their values are checked
// against the map's element type.
func DecodeStrict(n *yaml.Node, out any) error {
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("cannot decode settings into %T: need a non-nil pointer", out)
	}
	if err := checkKeys(n, rv.Type().Elem(), ""); err != nil {
		return err
	}
	return n.Decode(out)
}

// checkKeys walks n against type t, reporting the first unknown key.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return checkKeys(n.Content[0], t, path)
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return checkKeys(n.Alias, t, path)
	}
	if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil // the type decodes itself
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // Node.Decode reports the type error with its line
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" {
				if err := checkKeys(v, t, path); err != nil {
					return err
				}
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				if _, inlineMap := fields["*"]; inlineMap {
					continue
				}
				return fmt.Errorf("line %d: unknown key %q%s (known: %s)", k.Line, k.Value, inPath(path), knownKeys(fields))
			}
			if err := checkKeys(v, ft, join(path, k.Value)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Interface:
		if n.Kind == yaml.MappingNode && t.NumMethod() == 0 {
			return nil // any: every key is welcome
		}
		if n.Kind == yaml.MappingNode {
			return fmt.Errorf("line %d: cannot decode a mapping%s into %s", n.Line, inPath(path), t)
		}
	}
	return nil
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// yamlFields maps each YAML key of struct t to its field type, following
// yaml.v3's rules: the tag name, else the lower-cased field name; ",inline"
// structs contribute their fields; "-" is skipped.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					fields[k] = v
				}
			} else {
				fields["*"] = ft // inline map: anything goes
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

func knownKeys(fields map[string]reflect.Type) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return "none"
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func inPath(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path
}
