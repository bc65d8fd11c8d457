package ops_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/ops"

	_ "github.com/cloudrift/cloudrift/plugins/cloudmemory"
)

// cloudYAML has a plugin's server (front) and a game clients' server
// (edge) in front of the cloud memory.
const cloudYAML = `
system: opscloud
secret: a-secret-of-sufficient-length
groups:
  - {name: front, visibility: internal, connectsTo: [cloud]}
  - {name: edge, visibility: external, connectsTo: [cloud]}
  - name: cloud
    visibility: internal
    plugins: [{name: cloudmemory}]
`

func TestCloudOperationsAreCountedAndTimed(t *testing.T) {
	sys := clustertest.Start(t, cloudYAML)
	sys.WaitLinked("front")
	front := sys.Server("front-1")
	mem, err := front.Host().CloudMemory()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		if err := mem.Post(ctx, cloud.Key{Primary: "k", Secondary: uint32(i)}, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := mem.Get(ctx, cloud.Query{Keys: []cloud.Key{{Primary: "k"}}}); err != nil {
		t.Fatal(err)
	}
	if err := mem.Unsubscribe(ctx, []cloud.Key{{Primary: "k"}}); !errors.Is(err, cloud.ErrNotSubscribed) {
		t.Fatalf("Unsubscribe of nothing: %v, want ErrNotSubscribed", err)
	}

	// The replica's store gauges come from the cloud memory itself: three
	// rows under three keys, no subscription.
	replica := serve(t, ops.NewHandler(ops.Options{}, sys.Server("cloud-1").Cluster()))
	_, rbody := get(t, "GET", replica.URL()+"/metrics")
	for _, want := range []string{
		`cloudrift_cloud_rows{group="cloud"} 3`,
		`cloudrift_cloud_keys{group="cloud"} 3`,
		`cloudrift_cloud_subscriptions{group="cloud"} 0`,
	} {
		if !strings.Contains(rbody, want) {
			t.Errorf("replica /metrics lacks %q; cloud series:\n%s", want, grep(rbody, "cloudrift_cloud"))
		}
	}

	l := serve(t, ops.NewHandler(ops.Options{}, front.Cluster()))
	_, body := get(t, "GET", l.URL()+"/metrics")
	for _, want := range []string{
		`cloudrift_cloud_operations_total{group="front",op="post",result="ok",source="plugin"} 3`,
		`cloudrift_cloud_operations_total{group="front",op="get",result="ok",source="plugin"} 1`,
		`cloudrift_cloud_operations_total{group="front",op="unsubscribe",result="not_subscribed",source="plugin"} 1`,
		`cloudrift_cloud_operation_duration_seconds_count{group="front",op="post",source="plugin"} 3`,
		`cloudrift_cloud_operation_duration_seconds_bucket{group="front",op="post",source="plugin",le="+Inf"} 3`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q; cloud series:\n%s", want, grep(body, "cloudrift_cloud"))
		}
	}
}

// The cloud operations of game clients are counted apart from the
// plugins', under source "client", with their result codes.
func TestClientCloudOperationsAreCounted(t *testing.T) {
	sys := clustertest.Start(t, cloudYAML)
	sys.WaitLinked("edge")
	edge := sys.Server("edge-1")
	c := edge.Dial()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 2 {
		if err := c.Post(ctx, cloud.Key{Primary: "k", Secondary: uint32(i)}, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Get(ctx, cloud.Query{Keys: []cloud.Key{{Primary: "k"}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Unsubscribe(ctx, []cloud.Key{{Primary: "k"}}); !errors.Is(err, cloud.ErrNotSubscribed) {
		t.Fatalf("Unsubscribe of nothing: %v, want ErrNotSubscribed", err)
	}

	l := serve(t, ops.NewHandler(ops.Options{}, edge.Cluster()))
	_, body := get(t, "GET", l.URL()+"/metrics")
	for _, want := range []string{
		`cloudrift_cloud_operations_total{group="edge",op="post",result="ok",source="client"} 2`,
		`cloudrift_cloud_operations_total{group="edge",op="get",result="ok",source="client"} 1`,
		`cloudrift_cloud_operations_total{group="edge",op="unsubscribe",result="not_subscribed",source="client"} 1`,
		`cloudrift_cloud_operation_duration_seconds_count{group="edge",op="post",source="client"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q; cloud series:\n%s", want, grep(body, "cloudrift_cloud"))
		}
	}
	if strings.Contains(body, `source="plugin"`) {
		t.Errorf("/metrics counts plugin operations no plugin made:\n%s", grep(body, "cloudrift_cloud"))
	}
}

// fakeStore reports fixed store gauges, as a cloud-memory replica does.
type fakeStore struct{}

func (fakeStore) CloudStoreStats() (rows, keys, subscriptions int) { return 3, 2, 1 }

func TestCloudStoreGaugesComeFromThePlugin(t *testing.T) {
	sys := clustertest.Start(t, relayYAML, clustertest.WithPlugins("world-1", fakeStore{}))
	l := serve(t, ops.NewHandler(ops.Options{}, sys.Server("world-1").Cluster()))
	_, body := get(t, "GET", l.URL()+"/metrics")
	for _, want := range []string{
		`cloudrift_cloud_rows{group="world"} 3`,
		`cloudrift_cloud_keys{group="world"} 2`,
		`cloudrift_cloud_subscriptions{group="world"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
