package ops

import (
	"net/http"
	"strconv"

	"github.com/cloudrift/cloudrift/cluster"
)

// Status is the /status document of one server.
type Status struct {
	ID          string       `json:"id"`
	Group       string       `json:"group"`
	Incarnation string       `json:"incarnation"` // decimal: JSON numbers lose 64-bit precision
	Ready       bool         `json:"ready"`
	NotReady    string       `json:"not_ready,omitempty"`
	Clients     *int         `json:"clients_connected,omitempty"` // external groups only
	Draining    bool         `json:"draining"`
	Peers       []PeerStatus `json:"peers"`
}

// PeerStatus is one remote server in Status.
type PeerStatus struct {
	ID          string `json:"id"`
	Group       string `json:"group"`
	Direction   string `json:"direction"`
	Incarnation string `json:"incarnation"`
	State       string `json:"state"`
	Linked      bool   `json:"linked"`
	Transport   string `json:"transport,omitempty"` // "tcp" or "unix" while linked
	MessagesIn  uint64 `json:"messages_in"`
	MessagesOut uint64 `json:"messages_out"`
	BytesIn     uint64 `json:"bytes_in"`
	BytesOut    uint64 `json:"bytes_out"`
	QueueBytes  int    `json:"queue_bytes"`
}

// StatusOf returns the status of s.
func StatusOf(s *cluster.Server) Status {
	st := Status{ID: s.ID(), Group: s.GroupName(), Incarnation: strconv.FormatUint(s.Incarnation(), 10), Peers: []PeerStatus{}}
	if err := s.Ready(); err != nil {
		st.NotReady = err.Error()
	} else {
		st.Ready = true
	}
	st.Draining = s.Draining()
	if cs := s.Clients(); cs.External {
		st.Clients = &cs.Connected
	}
	for _, p := range s.Peers() {
		st.Peers = append(st.Peers, PeerStatus{
			ID: p.ID, Group: p.Group, Direction: p.Direction.String(), Incarnation: strconv.FormatUint(p.Incarnation, 10),
			State: p.State.String(), Linked: p.Linked, Transport: p.Transport, MessagesIn: p.MessagesIn, MessagesOut: p.MessagesOut,
			BytesIn: p.BytesIn, BytesOut: p.BytesOut, QueueBytes: p.QueueBytes,
		})
	}
	return st
}

// status writes the server's Status, or an array of them when the
// handler serves several servers.
func (h *handler) status(w http.ResponseWriter) {
	if len(h.servers) == 1 {
		writeJSON(w, StatusOf(h.servers[0]))
		return
	}
	all := make([]Status, 0, len(h.servers))
	for _, s := range h.servers {
		all = append(all, StatusOf(s))
	}
	writeJSON(w, all)
}
