package fileregistry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloudrift/cloudrift/registry"
)

// record is a member file's content.
type record struct {
	ID          string            `json:"id"`
	Group       string            `json:"group"`
	Address     string            `json:"address"`
	Incarnation uint64            `json:"incarnation"`
	Meta        map[string]string `json:"meta,omitempty"`
}

func toRecord(m registry.Member) record {
	return record{ID: m.ID, Group: m.Group, Address: m.Address, Incarnation: m.Incarnation, Meta: m.Meta}
}

func (r record) member() registry.Member {
	return registry.Member{ID: r.ID, Group: r.Group, Address: r.Address, Incarnation: r.Incarnation, Meta: r.Meta}
}

const suffix = ".json"

// escape makes a name one safe path element: path-escaped, with every dot
// escaped too, so no name is "." or ".." and none starts like a temporary
// file.
func escape(name string) string {
	return strings.ReplaceAll(url.PathEscape(name), ".", "%2E")
}

// writeRecord writes r to path whole: a temporary file in the same
// directory, renamed into place.
func writeRecord(path string, r record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// readRecord reads the member file at path.
func readRecord(path string) (record, error) {
	var r record
	data, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// listGroup returns the members of group whose files under dir were
// renewed within ttl of now. A missing directory is an empty group; a file
// that vanishes or is unreadable while being listed is skipped.
func listGroup(dir, group string, ttl time.Duration, now time.Time) ([]registry.Member, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []registry.Member
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, suffix) {
			continue
		}
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) > ttl {
			continue
		}
		r, err := readRecord(filepath.Join(dir, name))
		if err != nil || r.Group != group || r.member().Validate() != nil {
			continue
		}
		out = append(out, r.member())
	}
	return out, nil
}
