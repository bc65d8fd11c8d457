package yamlx

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrNotPointer is returned by DecodeStrict for an out that is not a
// non-nil pointer.
var ErrNotPointer = errors.New("yamlx: decode target is not a non-nil pointer")

// DecodeStrict decodes n into out (a non-nil pointer) like yaml.v3's
// Node.Decode, but first applies the rules of Fields to every mapping and
// rejects any key out's type does not have. Errors start with "line N: ".
// Maps accept any key; their values are checked against the map's element
// type. A type that implements yaml.Unmarshaler decodes itself.
func DecodeStrict(n *yaml.Node, out any) error {
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("%w: %T", ErrNotPointer, out)
	}
	if err := checkKeys(n, rv.Type().Elem(), ""); err != nil {
		return err
	}
	return n.Decode(out)
}

// checkKeys walks n against type t, reporting the first broken rule.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return checkKeys(n.Content[0], t, path)
	}
	n = Resolve(n)
	if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil // the type decodes itself
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // Node.Decode reports the type error with its line
		}
		fs, probs := Fields(n)
		if len(probs) > 0 {
			return fmt.Errorf("line %d: %s%s", probs[0].Node.Line, probs[0].Msg, inPath(path))
		}
		fields := yamlFields(t)
		_, inlineMap := fields["*"]
		for _, f := range fs {
			ft, ok := fields[f.Key.Value]
			if !ok {
				if inlineMap {
					continue
				}
				return fmt.Errorf("line %d: %s (known: %s)", f.Key.Line, unknownIn(f.Key.Value, path, fields), knownKeys(fields))
			}
			if err := checkKeys(f.Val, ft, join(path, f.Key.Value)); err != nil {
				return err
			}
		}
	case reflect.Map:
		fs, probs := Fields(n)
		if len(probs) > 0 {
			return fmt.Errorf("line %d: %s%s", probs[0].Node.Line, probs[0].Msg, inPath(path))
		}
		for _, f := range fs {
			if err := checkKeys(f.Val, t.Elem(), join(path, f.Key.Value)); err != nil {
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

// unknownIn is UnknownKey with the path between the key and the suggestion.
func unknownIn(k, path string, fields map[string]reflect.Type) string {
	known := make([]string, 0, len(fields))
	for name := range fields {
		known = append(known, name)
	}
	msg := fmt.Sprintf("unknown key %q%s", k, inPath(path))
	if s := Suggest(k, known); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return msg
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
