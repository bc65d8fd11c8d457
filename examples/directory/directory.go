// Package directory is the server-directory example of RakNet's cloud
// computing documentation (CloudServer and CloudClient): dedicated game
// servers list themselves in the cloud memory, and game clients list,
// filter and watch them.
//
// A game server is a game client of the system (it dials a client server
// with the client SDK, like a player). It lists itself under a secret
// application key, the primary key of every row, with one row per field
// (secondary keys Field*): its name, level, player count, capacity, game
// port and, for the detail view only, its player list. The cloud memory
// adds what the game server cannot be trusted to say: the uploader's
// ClientRef and its remote address, from which a browser builds the address
// to join. A game server leaves the directory when it calls Delist, and
// also, with nothing to call, when it disconnects or crashes: rows live
// only while their uploader is connected.
//
// Browsers call List (one Get, optionally filtered), Details (a Get of every
// field limited to one game server: RakNet's specificSystems) or Watch
// (a live client.View of the list: servers appear, change and vanish as
// notifications arrive).
//
// The "directory-guard" plugin (Guard), run by the client servers, decides
// who may list: only clients that presented the host token at connect may
// post or release rows under the application key, and every posted field
// is checked.
package directory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol"
)

// ClientRef is the system-wide address of a game client (here, a game
// server).
type ClientRef = protocol.ClientRef

// Fields: the secondary keys of a game server's rows under the
// application key.
const (
	FieldName       uint32 = 1 // the server's display name (text)
	FieldLevel      uint32 = 2 // the level being played (text)
	FieldPlayers    uint32 = 3 // players connected (u32)
	FieldMaxPlayers uint32 = 4 // capacity (u32)
	FieldGamePort   uint32 = 5 // the UDP/TCP port the game listens on (u32)
	FieldPlayerList uint32 = 6 // player names, one per line: detail only
)

// Limits on the fields, checked by Announce and by the guard.
const (
	MaxTextBytes  = 64  // name, level, and each player name
	MaxPlayerList = 128 // names in the player list
)

// summaryFields are the fields List and Watch read; Details reads
// allFields.
var (
	summaryFields = []uint32{FieldName, FieldLevel, FieldPlayers, FieldMaxPlayers, FieldGamePort}
	allFields     = append(summaryFields[:len(summaryFields):len(summaryFields)], FieldPlayerList)
)

// Errors of the package; compare with errors.Is.
var (
	// ErrBadListing: a field is out of its limits (Announce, SetPlayers,
	// and the guard's rejections).
	ErrBadListing = errors.New("directory: bad listing")
	// ErrNotListed: Details found no listed game server with that ref.
	ErrNotListed = errors.New("directory: server not listed")
	// ErrPartial: some replicas did not answer in time (or the download
	// byte limit cut the result short and paging did not finish); the
	// servers returned are those that did.
	ErrPartial = errors.New("directory: partial list")
)

// Listing is what a game server says about itself.
type Listing struct {
	Name       string
	Level      string
	Players    int
	MaxPlayers int
	GamePort   int
	// PlayerList is only read by Details.
	PlayerList []string
}

// Validate checks the listing against the field limits.
func (l Listing) Validate() error {
	if l.Name == "" {
		return fmt.Errorf("%w: no name", ErrBadListing)
	}
	for _, f := range []struct {
		field uint32
		data  []byte
	}{
		{FieldName, []byte(l.Name)}, {FieldLevel, []byte(l.Level)},
		{FieldPlayers, encodeInt(l.Players)}, {FieldMaxPlayers, encodeInt(l.MaxPlayers)},
		{FieldGamePort, encodeInt(l.GamePort)}, {FieldPlayerList, encodeList(l.PlayerList)},
	} {
		if err := checkField(f.field, f.data); err != nil {
			return err
		}
	}
	if len(l.PlayerList) > MaxPlayerList {
		return fmt.Errorf("%w: %d players listed, at most %d", ErrBadListing, len(l.PlayerList), MaxPlayerList)
	}
	for _, n := range l.PlayerList {
		if err := checkText("player name", []byte(n)); err != nil {
			return err
		}
	}
	if l.Players < 0 || l.MaxPlayers < 0 || l.GamePort <= 0 || l.GamePort > 65535 {
		return fmt.Errorf("%w: players %d, max %d, port %d", ErrBadListing, l.Players, l.MaxPlayers, l.GamePort)
	}
	return nil
}

// Server is a listed game server, as browsers see it.
type Server struct {
	// Ref is the game server's uploader identity: pass it to Details.
	Ref ClientRef
	// Addr is where players join it: the host its rows came from and its
	// game port.
	Addr string
	// RemoteAddr is the uploader's remote address as its client server saw
	// it (host:port of its connection to the cloudrift system).
	RemoteAddr string
	// Via is the client server the game server is connected to.
	Via string
	Listing
}

// Full reports whether the server holds its capacity of players (a
// capacity of 0 means unlimited).
func (s Server) Full() bool { return s.MaxPlayers > 0 && s.Players >= s.MaxPlayers }

// Filter selects servers; nil selects all.
type Filter func(Server) bool

// OnLevel selects the servers playing level.
func OnLevel(level string) Filter { return func(s Server) bool { return s.Level == level } }

// NotFull selects the servers with room for another player.
func NotFull() Filter { return func(s Server) bool { return !s.Full() } }

// All combines filters: a server passes when every filter selects it.
func All(filters ...Filter) Filter {
	return func(s Server) bool {
		for _, f := range filters {
			if f != nil && !f(s) {
				return false
			}
		}
		return true
	}
}

// key returns the cloud key of a field under app.
func key(app string, field uint32) cloud.Key { return cloud.Key{Primary: app, Secondary: field} }

func keys(app string, fields []uint32) []cloud.Key {
	ks := make([]cloud.Key, len(fields))
	for i, f := range fields {
		ks[i] = key(app, f)
	}
	return ks
}

func encodeInt(n int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }

func decodeInt(b []byte) (int, bool) {
	if len(b) != 4 {
		return 0, false
	}
	return int(binary.BigEndian.Uint32(b)), true
}

func encodeList(names []string) []byte { return []byte(strings.Join(names, "\n")) }

func decodeList(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\n")
}

// checkText validates a text field.
func checkText(what string, b []byte) error {
	if len(b) > MaxTextBytes || !utf8.Valid(b) || strings.ContainsAny(string(b), "\n\x00") {
		return fmt.Errorf("%w: %s must be UTF-8 text of at most %d bytes without newlines", ErrBadListing, what, MaxTextBytes)
	}
	return nil
}

// checkField validates one field's encoded data: the rules Announce
// applies before posting and the guard applies to every Post.
func checkField(field uint32, data []byte) error {
	text := checkText
	switch field {
	case FieldName:
		if len(data) == 0 {
			return fmt.Errorf("%w: empty name", ErrBadListing)
		}
		return text("name", data)
	case FieldLevel:
		return text("level", data)
	case FieldPlayers, FieldMaxPlayers, FieldGamePort:
		n, ok := decodeInt(data)
		if !ok {
			return fmt.Errorf("%w: field %d must be a 4-byte number", ErrBadListing, field)
		}
		if field == FieldGamePort && (n == 0 || n > 65535) {
			return fmt.Errorf("%w: game port %d", ErrBadListing, n)
		}
		return nil
	case FieldPlayerList:
		names := decodeList(data)
		if len(names) > MaxPlayerList {
			return fmt.Errorf("%w: %d players listed, at most %d", ErrBadListing, len(names), MaxPlayerList)
		}
		for _, n := range names {
			if err := text("player name", []byte(n)); err != nil {
				return err
			}
		}
		return nil
	default:
		return fmt.Errorf("%w: unknown field %d", ErrBadListing, field)
	}
}

// assemble groups rows (of one application key) by uploader into servers,
// sorted by name then ref. A server is listed once its name and game port
// rows exist; rows of a half-announced server are skipped.
func assemble(rows []cloud.Row, filter Filter) []Server {
	byRef := make(map[ClientRef]*Server)
	var order []ClientRef
	for _, r := range rows {
		s := byRef[r.Uploader]
		if s == nil {
			s = &Server{Ref: r.Uploader, RemoteAddr: r.Addr, Via: r.Via}
			byRef[r.Uploader] = s
			order = append(order, r.Uploader)
		}
		switch r.Key.Secondary {
		case FieldName:
			s.Name = string(r.Data)
		case FieldLevel:
			s.Level = string(r.Data)
		case FieldPlayers:
			s.Players, _ = decodeInt(r.Data)
		case FieldMaxPlayers:
			s.MaxPlayers, _ = decodeInt(r.Data)
		case FieldGamePort:
			s.GamePort, _ = decodeInt(r.Data)
		case FieldPlayerList:
			s.PlayerList = decodeList(r.Data)
		}
	}
	out := make([]Server, 0, len(order))
	for _, ref := range order {
		s := byRef[ref]
		if s.Name == "" || s.GamePort == 0 {
			continue
		}
		s.Addr = joinAddr(s.RemoteAddr, s.GamePort)
		if filter == nil || filter(*s) {
			out = append(out, *s)
		}
	}
	sortServers(out)
	return out
}

// joinAddr puts the game port on the host of the uploader's address.
func joinAddr(remote string, port int) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func sortServers(ss []Server) {
	slices.SortFunc(ss, func(a, b Server) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return protocol.CompareRefs(a.Ref, b.Ref)
	})
}
