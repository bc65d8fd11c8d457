package cloudmemory

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/clustertest"
	"github.com/cloudrift/cloudrift/internal/testutil"
	"github.com/cloudrift/cloudrift/rendezvous"
)

// Membership churn over real links: a Get is complete for the moment it
// was served, or partial naming exactly the keys it lacks.

// checkAnswer fails the test unless res holds, for every key it does not
// name missing, exactly the rows of want (key → uploader → data), and no
// row of a missing key; it reports the missing keys.
func checkAnswer(t *testing.T, what string, res *cloud.Result, want view) []key {
	t.Helper()
	got := view{}
	got.load(res.Rows)
	for _, k := range res.Missing {
		if len(got[k]) > 0 {
			t.Fatalf("%s: rows of missing key %s", what, k)
		}
	}
	if res.Partial != (len(res.Missing) > 0) {
		t.Fatalf("%s: partial %v with %d keys missing", what, res.Partial, len(res.Missing))
	}
	for k, rows := range want {
		if slices.Contains(res.Missing, k) {
			continue
		}
		if fmt.Sprint(got[k]) != fmt.Sprint(rows) {
			t.Fatalf("%s: %s has %v, want %v (partial %v, %d of %d rows, total %d)",
				what, k, got[k], rows, res.Partial, len(res.Rows), countRows(want), res.Total)
		}
	}
	if res.Total != len(res.Rows) {
		t.Fatalf("%s: total %d with %d rows", what, res.Total, len(res.Rows))
	}
	return res.Missing
}

func countRows(v view) int {
	n := 0
	for _, rows := range v {
		n += len(rows)
	}
	return n
}

// churnSystem is the test system with up to 32 keys per query, and the
// replicas' settings to match.
func churnSystem(t *testing.T) (*clustertest.System, Config) {
	sys := testSystem(t)
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(strings.Replace(testSettings, "maxKeysPerQuery: 8", "maxKeysPerQuery: 32", 1)), &node); err != nil {
		t.Fatal(err)
	}
	for i := range sys.Groups {
		if sys.Groups[i].Name == "cloud" {
			sys.Groups[i].Plugins[0].Settings = *node.Content[0]
		}
	}
	cfg := testConfig
	cfg.MaxKeysPerQuery = 32
	return clustertest.NewSystem(t, sys, clustertest.WithLogLevel(zerolog.DebugLevel)), cfg
}

// A replica that joins takes keys over with none of their rows: until
// the uploaders' servers placed them there, it must not answer for them
// as if it held them.
func TestAcceptGetRightAfterReplicaJoins(t *testing.T) {
	e, cfg := churnSystem(t)
	e.StartServer("cloud", "cloud-1", &Service{Config: cfg})
	cs := [2]*probe{{}, {}}
	srv := [2]*clustertest.Server{
		e.StartServer("client", "client-1", cs[0]),
		e.StartServer("client", "client-2", cs[1]),
	}
	for _, p := range cs {
		testutil.WaitFor(t, "linked to cloud-1", p.linked(1))
	}
	ctx := testutil.Context(t)
	up := srv[0].DialWith(client.Options{Handler: func(client.Message) {}})
	reader := srv[1].DialWith(client.Options{Handler: func(client.Message) {}})
	keys := make([]key, 20)
	want := view{}
	for i := range keys {
		keys[i] = key{Primary: "join", Secondary: uint32(i)}
		if err := up.Post(ctx, keys[i], fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
		want[keys[i]] = map[ref]string{up.Ref(): fmt.Sprintf("v%d", i)}
	}
	partial := 0
	for n := 2; n <= 4; n++ {
		r := e.AddReplica("cloud", &Service{Config: cfg})
		// At once, while the new replica's keys are on their way.
		res, err := reader.Get(ctx, cloud.Query{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		if len(checkAnswer(t, "right after "+r.ID()+" joined", res, want)) > 0 {
			partial++
		}
		for _, p := range cs {
			testutil.WaitFor(t, "callers see the replicas", p.linked(n))
			testutil.WaitFor(t, "callers settled", p.settled)
		}
		res, err = reader.Get(ctx, cloud.Query{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		if checkAnswer(t, "after "+r.ID()+" settled", res, want); res.Partial {
			t.Fatalf("after %s settled: partial, missing %v", r.ID(), res.Missing)
		}
	}
	t.Logf("%d of 3 reads right after a join were partial", partial)
}

// A replica dies while the registry is out: the keys the live replicas
// owned before and still own are always served; only the dead replica's
// keys may be missing, until the registry says it left and their new
// owners hold their rows.
func TestAcceptReplicaKilledOnlyItsKeysMissing(t *testing.T) {
	s := startSystem(t)
	ctx := testutil.Context(t)
	keys := spreadKeys(t, "killget", 8)
	up := s.dial(0, client.Options{})
	want := view{}
	for i, k := range keys {
		if err := up.Post(ctx, k, fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
		want[k] = map[ref]string{up.Ref(): fmt.Sprintf("v%d", i)}
	}
	victim := busiestReplica(keys)
	r3 := rendezvous.NewRing([]string{"cloud-1", "cloud-2", "cloud-3"})
	var theirs []key
	for _, k := range keys {
		if ownerOf(r3, k) == victim {
			theirs = append(theirs, k)
		}
	}
	reader := s.dial(1, client.Options{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var results []*cloud.Result
	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 2000 {
			select {
			case <-stop:
				return
			default:
			}
			res, err := reader.Get(ctx, cloud.Query{Keys: keys})
			mu.Lock()
			if err != nil {
				readErr = err
			} else {
				results = append(results, res)
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	reads := func(n int) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return len(results) >= n || readErr != nil }
	}
	testutil.WaitFor(t, "reads before the kill", reads(3))
	// The registry is out when the replica dies: the links know at once,
	// the registry only later. Meanwhile the callers and the replicas
	// must still agree on who owns what.
	s.Hub().Pause()
	s.Server(victim).Kill()
	mu.Lock()
	killed := len(results)
	mu.Unlock()
	testutil.WaitFor(t, "reads while the registry is out", reads(killed+3))
	s.Hub().Resume()
	for _, p := range []*probe{s.world, s.cs[0], s.cs[1]} {
		testutil.WaitFor(t, "callers see two replicas", p.linked(2))
		testutil.WaitFor(t, "callers settled", p.settled)
	}
	mu.Lock()
	after := len(results)
	mu.Unlock()
	testutil.WaitFor(t, "reads after the kill settled", reads(after+3))
	close(stop)
	wg.Wait()
	if readErr != nil {
		t.Fatal(readErr)
	}
	partial := 0
	for i, res := range results {
		missing := checkAnswer(t, fmt.Sprintf("read %d", i), res, want)
		for _, k := range missing {
			if !slices.Contains(theirs, k) {
				t.Fatalf("read %d: %s missing, which %s did not own (missing %v)", i, k, victim, missing)
			}
		}
		if len(missing) > 0 {
			partial++
		}
	}
	if last := results[len(results)-1]; last.Partial {
		t.Fatalf("the last read, after the callers settled, is partial: %v", last.Missing)
	}
	t.Logf("%d reads, %d partial, %s owned %d of %d keys", len(results), partial, victim, len(theirs), len(keys))
}

// A client server that dies keeps its rows for the whole grace, however
// the replicas learn that it left.
func TestAcceptKilledServerRowsLastTheirGrace(t *testing.T) {
	s := startSystem(t)
	ctx := testutil.Context(t)
	keys := spreadKeys(t, "grace", 4)
	var mu sync.Mutex
	var deletedAt []time.Time
	var updates int
	sub := s.dial(0, client.Options{OnCloud: func(n cloud.Notification) {
		mu.Lock()
		defer mu.Unlock()
		switch n.Type {
		case cloud.NotifyUpdated:
			updates++
		case cloud.NotifyDeleted:
			deletedAt = append(deletedAt, time.Now())
		}
	}})
	if _, err := sub.Get(ctx, cloud.Query{Keys: keys, Subscribe: true}); err != nil {
		t.Fatal(err)
	}
	victim := s.dial(1, client.Options{})
	for _, k := range keys {
		if err := victim.Post(ctx, k, []byte("doomed")); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, "4 updates", func() bool { mu.Lock(); defer mu.Unlock(); return updates == len(keys) })
	grace := testConfig.ServerGrace.Duration()
	killed := time.Now()
	s.csrv[1].Kill()
	testutil.WaitFor(t, "4 deletions", func() bool { mu.Lock(); defer mu.Unlock(); return len(deletedAt) == len(keys) })
	mu.Lock()
	defer mu.Unlock()
	for _, at := range deletedAt {
		// The grace starts when a replica sees the link break, after the
		// kill: a deletion can only come later than this.
		if d := at.Sub(killed); d < grace {
			t.Fatalf("a row was deleted %s after its server died, within the grace of %s", d, grace)
		}
	}
}
