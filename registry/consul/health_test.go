package consul

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/cloudrift/cloudrift/internal/consultest"
	"github.com/cloudrift/cloudrift/registry"
)

// Health lists every member of a group with its status, passing or not,
// and leaves other groups and systems out.
func TestHealth(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	a := conn(t, agent, Config{TTL: time.Second})
	b := conn(t, agent, Config{})
	other := conn(t, agent, Config{})
	foreign := conn(t, agent, Config{System: "othersys"})
	if err := a.Register(t.Context(), member("g", "a", 11)); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(t.Context(), member("g", "b", 22)); err != nil {
		t.Fatal(err)
	}
	if err := other.Register(t.Context(), member("h", "c", 33)); err != nil {
		t.Fatal(err)
	}
	if err := foreign.Register(t.Context(), member("g", "d", 44)); err != nil {
		t.Fatal(err)
	}

	hs, err := b.Health(t.Context(), "g")
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || hs[0].ID != "a" || hs[1].ID != "b" {
		t.Fatalf("Health(g) = %+v, want members a and b", hs)
	}
	for i, inc := range []uint64{11, 22} {
		h := hs[i]
		if h.Status != api.HealthPassing || h.Output != "" || h.Incarnation != inc ||
			h.Group != "g" || h.Address != "127.0.0.1:7000" || h.Node == "" || h.Meta["proto"] != "1" {
			t.Errorf("member %d: %+v, want passing with incarnation %d, address, node and meta", i, h, inc)
		}
	}

	// A crashed member stays listed, critical, with Consul's reason.
	a.crash()
	var crashed MemberHealth
	pollUntil(t, "crashed member critical in Health", func() bool {
		hs, err := b.Health(t.Context(), "g")
		if err != nil || len(hs) != 2 {
			return false
		}
		crashed = hs[0]
		return crashed.ID == "a" && crashed.Status == api.HealthCritical && hs[1].Status == api.HealthPassing
	})
	if !strings.Contains(crashed.Output, "TTL expired") {
		t.Errorf("crashed member's output %q, want Consul's \"TTL expired\"", crashed.Output)
	}

	hs, err = b.Health(t.Context(), "nobody")
	if err != nil || len(hs) != 0 {
		t.Errorf("Health of an empty group = %v, %v; want nothing and no error", hs, err)
	}
	if _, err := b.Health(t.Context(), "bad group"); err == nil {
		t.Error("Health accepted an invalid group name")
	}
}

func TestHealthUnreachable(t *testing.T) {
	c, err := New(Config{System: "sys", Address: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Address() != "127.0.0.1:1" {
		t.Errorf("Address() = %q", c.Address())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err = c.Health(ctx, "g")
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("Health against nothing: %v; want ErrUnreachable naming the address", err)
	}
	c.Close()
	if _, err := c.Health(ctx, "g"); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("Health after Close: %v, want registry.ErrClosed", err)
	}
}

func TestHealthACL(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{ACL: true})
	good := conn(t, agent, Config{})
	if err := good.Register(t.Context(), member("g", "a", 1)); err != nil {
		t.Fatal(err)
	}
	if hs, err := good.Health(t.Context(), "g"); err != nil || len(hs) != 1 {
		t.Errorf("Health with the management token = %v, %v", hs, err)
	}
	bad := conn(t, agent, Config{Token: "00000000-1111-2222-3333-444444444444"})
	_, err := bad.Health(t.Context(), "g")
	if !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrUnreachable) {
		t.Errorf("Health with a wrong token: %v, want ErrUnauthorized", err)
	}

	// A token that may read services but not nodes: Consul filters the
	// entries out and says so.
	client, err := agent.API()
	if err != nil {
		t.Fatal(err)
	}
	pol, _, err := client.ACL().PolicyCreate(&api.ACLPolicy{Name: "services-only", Rules: `service_prefix "" { policy = "read" }`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := client.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	partial := conn(t, agent, Config{Token: tok.SecretID})
	hs, err := partial.Health(t.Context(), "g")
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "hid registrations") {
		t.Errorf("Health with a token without node:read = %v, %v; want ErrUnauthorized saying Consul hid registrations", hs, err)
	}

	// No token: the anonymous token may read nothing, and Consul answers
	// with an empty list marked as filtered, which must not read as "no
	// members".
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", "")
	anon, err := New(Config{System: "sys", Address: agent.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	hs, err = anon.Health(t.Context(), "g")
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "no token set") {
		t.Errorf("Health without a token = %v, %v; want ErrUnauthorized saying no token is set", hs, err)
	}
}
