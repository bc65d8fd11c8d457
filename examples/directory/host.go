package directory

import (
	"context"
	"fmt"

	"github.com/cloudrift/cloudrift/client"
)

// Announce lists c, a dedicated game server connected to the system, under
// the application key app: one Post per field, the name last, so that
// browsers list the server only once its other summary fields are there.
// Calling it again updates the listing. The listing lasts until Delist or
// until c disconnects.
func Announce(ctx context.Context, c *client.Client, app string, l Listing) error {
	if err := l.Validate(); err != nil {
		return err
	}
	for _, f := range []struct {
		field uint32
		data  []byte
	}{
		{FieldLevel, []byte(l.Level)},
		{FieldPlayers, encodeInt(l.Players)},
		{FieldMaxPlayers, encodeInt(l.MaxPlayers)},
		{FieldGamePort, encodeInt(l.GamePort)},
		{FieldPlayerList, encodeList(l.PlayerList)},
		{FieldName, []byte(l.Name)},
	} {
		if err := c.Post(ctx, key(app, f.field), f.data); err != nil {
			return fmt.Errorf("directory: announce field %d: %w", f.field, err)
		}
	}
	return nil
}

// SetPlayers updates the player count of a listed game server and, when
// names is not nil, its player list.
func SetPlayers(ctx context.Context, c *client.Client, app string, players int, names []string) error {
	if players < 0 {
		return fmt.Errorf("%w: players %d", ErrBadListing, players)
	}
	if names != nil {
		data := encodeList(names)
		if err := checkField(FieldPlayerList, data); err != nil {
			return err
		}
		if err := c.Post(ctx, key(app, FieldPlayerList), data); err != nil {
			return fmt.Errorf("directory: player list: %w", err)
		}
	}
	if err := c.Post(ctx, key(app, FieldPlayers), encodeInt(players)); err != nil {
		return fmt.Errorf("directory: players: %w", err)
	}
	return nil
}

// Delist removes c's listing (every field) from the directory; browsers
// watching the list see the server vanish. Disconnecting has the same
// effect.
func Delist(ctx context.Context, c *client.Client, app string) error {
	if err := c.Release(ctx, keys(app, allFields)...); err != nil {
		return fmt.Errorf("directory: delist: %w", err)
	}
	return nil
}
