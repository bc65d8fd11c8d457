// This file is in package cluster because it checks the settings New
// resolves (the server's links and group), which the API does not show.

package cluster

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/registry/embedded"
)

// A System built in Go code gets a system file's defaults and checks from
// New, and the caller's System is left as it was.
func TestNewAppliesTheSystemFilesDefaults(t *testing.T) {
	sys := &config.System{
		System: "test",
		Secret: testSecret,
		Groups: []config.Group{
			{Name: "g1", Visibility: config.External, ConnectsTo: []string{"g2"}},
			{Name: "g2", Visibility: config.Internal},
		},
	}
	want := *sys
	want.Groups = slices.Clone(sys.Groups)
	if err := want.Validate(); err != nil {
		t.Fatal(err)
	}
	hub := embedded.NewHub()
	s, err := New(Options{System: sys, Group: "g1", Registry: hub.Connector()})
	if err != nil {
		t.Fatal(err)
	}
	if s.links != want.Links || s.links.LeaveGrace != config.DefaultLeaveGrace {
		t.Errorf("links %+v, want %+v", s.links, want.Links)
	}
	if !reflect.DeepEqual(s.group.Clients, want.Groups[0].Clients) || s.group.Clients.SendQueueBytes != config.DefaultSendQueueBytes {
		t.Errorf("clients %+v, want %+v", s.group.Clients, want.Groups[0].Clients)
	}
	if sys.Links != (config.Links{}) || !reflect.DeepEqual(sys.Groups[0].Clients, config.Clients{}) || sys.Groups[0].Listen != "" {
		t.Errorf("New changed the caller's System: %+v", sys)
	}

	sys.Links.Heartbeat = config.Duration(-time.Second)
	if _, err := New(Options{System: sys, Group: "g1", Registry: hub.Connector()}); !errors.Is(err, ErrBadOptions) || !strings.Contains(err.Error(), "heartbeat") {
		t.Errorf("New with a negative heartbeat = %v, want ErrBadOptions naming it", err)
	}
}
