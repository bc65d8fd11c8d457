package registry

import (
	"slices"
	"sync"
	"testing"
)

func mem(id string) Member {
	return Member{ID: id, Group: "g", Address: "127.0.0.1:1", Incarnation: 1}
}

// take receives without blocking; ok is false when nothing is pending.
func take(t *testing.T, p *Publisher) (ms []Member, ok bool) {
	t.Helper()
	select {
	case ms, open := <-p.C():
		if !open {
			t.Fatal("channel closed unexpectedly")
		}
		return ms, true
	default:
		return nil, false
	}
}

func ids(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func TestPublisherFirstEmpty(t *testing.T) {
	p := NewPublisher()
	p.Publish(nil)
	ms, ok := take(t, p)
	if !ok {
		t.Fatal("first (empty) snapshot not published")
	}
	if ms == nil || len(ms) != 0 {
		t.Fatalf("first snapshot = %#v, want empty non-nil", ms)
	}
	p.Publish([]Member{})
	if ms, ok := take(t, p); ok {
		t.Fatalf("equal empty snapshot published again: %v", ms)
	}
}

func TestPublisherLatestWins(t *testing.T) {
	p := NewPublisher()
	p.Publish(nil)
	p.Publish([]Member{mem("a")})
	p.Publish([]Member{mem("b"), mem("a")})
	ms, ok := take(t, p)
	if !ok {
		t.Fatal("nothing pending")
	}
	if got := ids(ms); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("got %v, want latest sorted [a b]", got)
	}
	if ms, ok := take(t, p); ok {
		t.Fatalf("second snapshot pending: %v", ms)
	}
}

func TestPublisherNoRepeatAfterRevert(t *testing.T) {
	p := NewPublisher()
	p.Publish([]Member{mem("a")})
	if _, ok := take(t, p); !ok {
		t.Fatal("first snapshot missing")
	}
	// The set changes and changes back before the reader looks: the
	// reader already has [a], so nothing must be pending.
	p.Publish([]Member{mem("a"), mem("b")})
	p.Publish([]Member{mem("a")})
	if ms, ok := take(t, p); ok {
		t.Fatalf("snapshot equal to the delivered one is pending: %v", ids(ms))
	}
	// A real change after that is published.
	p.Publish(nil)
	ms, ok := take(t, p)
	if !ok || len(ms) != 0 {
		t.Fatalf("got %v (pending %v), want empty", ms, ok)
	}
}

func TestPublisherDetectsFieldChanges(t *testing.T) {
	base := Member{ID: "a", Group: "g", Address: "127.0.0.1:1", Incarnation: 1, Meta: map[string]string{"k": "v"}}
	changes := []func(m *Member){
		func(m *Member) { m.Address = "127.0.0.1:2" },
		func(m *Member) { m.Incarnation = 2 },
		func(m *Member) { m.Meta = map[string]string{"k": "w"} },
		func(m *Member) { m.Meta = nil },
	}
	for i, change := range changes {
		p := NewPublisher()
		p.Publish([]Member{base})
		take(t, p)
		m := base
		m.Meta = map[string]string{"k": "v"}
		change(&m)
		p.Publish([]Member{m})
		ms, ok := take(t, p)
		if !ok || !ms[0].Equal(m) {
			t.Errorf("change %d: got %v (pending %v), want %v", i, ms, ok, m)
		}
	}
}

func TestPublisherOwnership(t *testing.T) {
	p := NewPublisher()
	in := []Member{{ID: "a", Group: "g", Address: "x:1", Meta: map[string]string{"k": "v"}}}
	p.Publish(in)
	in[0].Meta["k"] = "changed by publisher's caller"
	ms, _ := take(t, p)
	if ms[0].Meta["k"] != "v" {
		t.Fatalf("publisher shares the caller's map: %v", ms[0].Meta)
	}
	ms[0].Meta["k"] = "changed by reader"
	ms[0].Address = "changed by reader"
	// Equal to what was published: must not be sent again, which shows
	// the publisher compared against its own copy.
	p.Publish([]Member{{ID: "a", Group: "g", Address: "x:1", Meta: map[string]string{"k": "v"}}})
	if got, ok := take(t, p); ok {
		t.Fatalf("reader's mutation leaked into the publisher: got %v", got)
	}
}

func TestPublisherClose(t *testing.T) {
	p := NewPublisher()
	p.Publish([]Member{mem("a")})
	p.Close()
	p.Close()
	p.Publish([]Member{mem("b")})
	ms, open := <-p.C()
	if !open || len(ms) != 1 || ms[0].ID != "a" {
		t.Fatalf("pending snapshot before close: got %v open=%v", ms, open)
	}
	if _, open := <-p.C(); open {
		t.Fatal("channel not closed")
	}
}

func TestPublisherConcurrent(t *testing.T) {
	p := NewPublisher()
	const writers, rounds = 4, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				set := []Member{mem("a")}
				if (i+w)%2 == 0 {
					set = append(set, mem("b"))
				}
				p.Publish(set)
			}
		}()
	}
	done := make(chan struct{})
	var prev []Member
	var fail string
	go func() {
		defer close(done)
		for ms := range p.C() {
			if prev != nil && equalMembers(prev, ms) {
				fail = "two equal snapshots in a row"
			}
			prev = ms
		}
	}()
	wg.Wait()
	p.Publish([]Member{mem("z")})
	p.Close()
	<-done
	if fail != "" {
		t.Fatal(fail)
	}
	if got := ids(prev); !slices.Equal(got, []string{"z"}) {
		t.Fatalf("last snapshot %v, want [z]", got)
	}
}
