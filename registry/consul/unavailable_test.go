package consul

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/registry"
)

// Register against a Consul that is not up yet, or that cannot serve (no
// leader), reports registry.ErrUnavailable, naming the address; a refusal
// a retry cannot fix does not.
func TestRegisterUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	c, err := New(Config{System: "sys", Address: down})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	err = c.Register(t.Context(), member("g", "a", 1))
	if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), down) {
		t.Fatalf("Register with nothing listening = %v, want registry.ErrUnavailable naming %s", err, down)
	}

	f := newFake(t)
	for _, tc := range []struct {
		code        int
		body        string
		unavailable bool
	}{
		{http.StatusInternalServerError, "No cluster leader", true},
		{http.StatusTooManyRequests, "rate limit exceeded", true},
		{http.StatusForbidden, "Permission denied", false},
		{http.StatusBadRequest, "Invalid service", false},
	} {
		c := newFakeConn(t, f, Config{TTL: 3 * time.Second})
		done := make(chan error, 1)
		go func() { done <- c.Register(t.Context(), member("g", "a", 1)) }()
		f.next().fail(tc.code, tc.body)
		if err := <-done; err == nil || errors.Is(err, registry.ErrUnavailable) != tc.unavailable {
			t.Errorf("Register answered %d: %v, want unavailable %v", tc.code, err, tc.unavailable)
		}
	}
}
