package cluster_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/plugins"
)

// fakeCloudClient stands in for the cloud memory's caller side: the
// "test-cloud" plugin attaches it to servers whose group connects to a
// group that runs "test-cloud". It records the order plugins start in.
type fakeCloudClient struct {
	Group    string
	Settings map[string]any
	mu       sync.Mutex
	sessions []string
	notify   []func(cloud.Notification)
}

func (f *fakeCloudClient) Start(_ context.Context, h plugins.Host) error {
	attached.Lock()
	attached.m[h.ServerID()] = f
	attached.order = append(attached.order, "attached "+h.ServerID())
	attached.Unlock()
	h.Logger().Info().Msg("attached plugin started")
	return nil
}

func (f *fakeCloudClient) CloudSession(name string, notify func(cloud.Notification)) plugins.CloudMemory {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions = append(f.sessions, name)
	f.notify = append(f.notify, notify)
	return fakeSession(name)
}

// attached holds, by server ID, the fakeCloudClient each server hosts, and
// the order in which attached and other plugins started.
var attached = struct {
	sync.Mutex
	m     map[string]*fakeCloudClient
	order []string
}{m: map[string]*fakeCloudClient{}}

func init() {
	plugins.Register(plugins.Info{
		Name: "test-cloud",
		New:  func() plugins.Plugin { return new(struct{}) },
		Attach: func(a plugins.Attachment) (plugins.Plugin, error) {
			fc := &fakeCloudClient{Group: a.Group}
			return fc, a.Spec.Decode(&fc.Settings)
		},
	})
}

type fakeSession string

func (fakeSession) Ref() plugins.ClientRef                        { return plugins.ClientRef{} }
func (fakeSession) Post(context.Context, cloud.Key, []byte) error { return nil }
func (fakeSession) Release(context.Context, ...cloud.Key) error   { return nil }
func (fakeSession) Unsubscribe(context.Context, []cloud.Key, ...plugins.ClientRef) error {
	return nil
}
func (fakeSession) Get(context.Context, cloud.Query) (*cloud.Result, error) {
	return nil, nil
}

type noteTaker struct {
	host  plugins.Host
	notes atomic.Int32 // notifications received
}

func (n *noteTaker) Start(_ context.Context, h plugins.Host) error {
	n.host = h
	attached.Lock()
	attached.order = append(attached.order, "own "+h.ServerID())
	attached.Unlock()
	return nil
}

func (n *noteTaker) CloudNotification(cloud.Notification) error {
	n.notes.Add(1)
	return nil
}

func TestAttachedPluginRunsFirst(t *testing.T) {
	// Internal groups only: the plugin is attached the same way on
	// external servers.
	sys := clustertest.New(t, `
system: test
secret: test-secret-of-sufficient-length
groups:
  - name: att-a
    visibility: internal
    connectsTo: [att-cloud]
  - name: att-cloud
    visibility: internal
    plugins:
      - name: test-cloud
        settings:
          maxRowBytes: 100
  - name: att-c
    visibility: internal
`)
	nt := &noteTaker{}
	s := sys.StartServer("att-a", "att-a1", nt)
	cm, err := nt.host.CloudMemory()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := nt.host.CloudMemory()
	if cm != again {
		t.Fatal("a second CloudMemory made a new session")
	}
	attached.Lock()
	fc := attached.m["att-a1"]
	order := strings.Join(attached.order, ", ")
	attached.Unlock()
	if fc == nil || fc.Group != "att-cloud" || fc.Settings["maxRowBytes"] != 100 || len(fc.sessions) != 1 || fc.notify[0] == nil {
		t.Fatalf("attached plugin %+v", fc)
	}
	if !strings.Contains(order, "attached att-a1, own att-a1") {
		t.Fatalf("start order: %s", order)
	}
	if logs := sys.Logs(); !strings.Contains(logs, `"plugin":"test-cloud@att-cloud"`) {
		t.Fatalf("attached plugin not named test-cloud@att-cloud in logs:\n%s", logs)
	}
	fc.notify[0](cloud.Notification{Type: cloud.NotifyResync})
	if nt.notes.Load() != 1 {
		t.Fatal("notification not delivered to the plugin's hook")
	}
	if _, err := s.Host().CloudMemory(); err != nil || fc.sessions[1] != "embedder" {
		t.Fatalf("embedder session: %v %v", err, fc.sessions)
	}

	// The cloud group itself, and unrelated groups, get no attachment.
	for _, srv := range []struct{ group, id string }{{"att-c", "att-c1"}, {"att-cloud", "att-cloud1"}} {
		nt := &noteTaker{}
		sys.StartServer(srv.group, srv.id, nt)
		if _, err := nt.host.CloudMemory(); !errors.Is(err, plugins.ErrNoCloudMemory) {
			t.Fatalf("CloudMemory on %s = %v", srv.group, err)
		}
	}
}

// A group that connects to two groups running the same attaching plugin
// does not start, and the error names both groups; attached settings are
// decoded strictly.
func TestAttachmentErrors(t *testing.T) {
	sys := clustertest.New(t, `
system: test
secret: test-secret-of-sufficient-length
groups:
  - name: twice
    visibility: internal
    connectsTo: [c1, c2]
  - name: c1
    visibility: internal
    plugins: [{name: test-cloud}]
  - name: c2
    visibility: internal
    plugins: [{name: test-cloud}]
  - name: strict
    visibility: internal
    connectsTo: [c3]
  - name: c3
    visibility: internal
    plugins:
      - name: test-cloud
        settings: [not, a, map]
`)
	if err := newErr(sys, "twice"); !errors.Is(err, cluster.ErrBadOptions) || !strings.Contains(err.Error(), `"c1" and "c2"`) {
		t.Fatalf("New(twice) = %v", err)
	}
	if err := newErr(sys, "strict"); !errors.Is(err, plugins.ErrSettings) || !strings.Contains(err.Error(), `attached from group "c3"`) {
		t.Fatalf("New(strict) = %v", err)
	}
}

// newErr is cluster.New's error for a server of group in sys, hosting ps
// when given.
func newErr(sys *clustertest.System, group string, ps ...plugins.Plugin) error {
	conn := sys.Hub().Connector()
	defer conn.Close()
	_, err := cluster.New(cluster.Options{System: sys.Config(), Group: group, Registry: conn, Plugins: ps})
	return err
}
