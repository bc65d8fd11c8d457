package fileregistry_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cloudrift/cloudrift/examples/fileregistry"
	"github.com/cloudrift/cloudrift/registry"
	"github.com/cloudrift/cloudrift/registry/registrytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newConn opens a connector of system "conf" on dir, failing t.
func newConn(t *testing.T, s fileregistry.Settings) registry.Connector {
	t.Helper()
	c, err := fileregistry.New(s, registry.Options{System: "conf"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) func() registry.Connector {
		s := fileregistry.Settings{Dir: t.TempDir(), Poll: 10 * time.Millisecond}
		return func() registry.Connector { return newConn(t, s) }
	})
}

// TestCrashedMemberExpires leaves a member file unrenewed, as a crashed
// server does, and waits for a watch to drop it.
func TestCrashedMemberExpires(t *testing.T) {
	s := fileregistry.Settings{Dir: t.TempDir(), Poll: 10 * time.Millisecond, TTL: time.Second}
	live, crashed := newConn(t, s), newConn(t, s)
	defer live.Close()
	ctx := t.Context()
	for _, r := range []struct {
		c  registry.Connector
		id string
	}{{live, "live"}, {crashed, "crashed"}} {
		if err := r.c.Register(ctx, registry.Member{ID: r.id, Group: "g", Address: "127.0.0.1:1", Incarnation: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// Copy the crashed member's file aside, close its connector (which
	// removes the file), and put the file back: nobody renews it now.
	path := filepath.Join(s.Dir, "conf", "g", "crashed.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := crashed.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ch, err := live.Watch(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	sawBoth := false
	for {
		select {
		case ms := <-ch:
			switch {
			case len(ms) == 2:
				sawBoth = true
			case len(ms) == 1 && ms[0].ID == "live":
				if !sawBoth {
					t.Fatal("the crashed member was never listed: the test proves nothing")
				}
				return
			default:
				t.Fatalf("snapshot %+v", ms)
			}
		case <-deadline:
			t.Fatal("the crashed member was never dropped")
		}
	}
}

func TestSettingsValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		s    fileregistry.Settings
	}{
		{"no dir", fileregistry.Settings{}},
		{"negative poll", fileregistry.Settings{Dir: "d", Poll: -1}},
		{"ttl below three polls", fileregistry.Settings{Dir: "d", Poll: time.Second, TTL: 2 * time.Second}},
	} {
		if err := c.s.Validate(); !errors.Is(err, fileregistry.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", c.name, err)
		}
	}
	s := fileregistry.Settings{Dir: "d", Poll: 2 * time.Second}
	if err := s.Validate(); err != nil || s.TTL != 6*time.Second {
		t.Errorf("defaults: %v, ttl %v", err, s.TTL)
	}
}
