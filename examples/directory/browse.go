package directory

import (
	"context"
	"fmt"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cloud"
)

// maxPages bounds the Gets of one List when the download byte limit cuts
// results short.
const maxPages = 1000

// List returns the game servers listed under app that filter selects,
// sorted by name then ref, with one Get of the summary fields (paged with
// Offset when the cloud memory's download byte limit truncates a result).
// When some replicas did not answer in time, List returns the servers it
// could read and an error wrapping ErrPartial.
func List(ctx context.Context, c *client.Client, app string, filter Filter) ([]Server, error) {
	rows, partial, err := getAll(ctx, c, cloud.Query{Keys: keys(app, summaryFields)})
	if err != nil {
		return nil, err
	}
	servers := assemble(rows, filter)
	if partial {
		return servers, fmt.Errorf("%w: some cloud replicas did not answer", ErrPartial)
	}
	return servers, nil
}

// Details returns every field of one listed game server, the player list
// included: a Get limited to that uploader (RakNet's specificSystems). It
// returns an error wrapping ErrNotListed when the server is not listed.
func Details(ctx context.Context, c *client.Client, app string, server ClientRef) (Server, error) {
	rows, partial, err := getAll(ctx, c, cloud.Query{Keys: keys(app, allFields), Uploaders: []ClientRef{server}})
	if err != nil {
		return Server{}, err
	}
	for _, s := range assemble(rows, nil) {
		if s.Ref == server {
			return s, nil
		}
	}
	if partial {
		return Server{}, fmt.Errorf("%w: some cloud replicas did not answer", ErrPartial)
	}
	return Server{}, fmt.Errorf("%w: %s", ErrNotListed, server)
}

// getAll runs q, then pages on while the result is truncated.
func getAll(ctx context.Context, c *client.Client, q cloud.Query) (rows []cloud.Row, partial bool, err error) {
	for range maxPages {
		res, err := c.Get(ctx, q)
		if err != nil {
			return nil, false, fmt.Errorf("directory: list: %w", err)
		}
		rows = append(rows, res.Rows...)
		partial = partial || res.Partial
		q.Offset += uint32(len(res.Rows))
		if !res.Truncated || len(res.Rows) == 0 || int(q.Offset) >= res.Total {
			return rows, partial, nil
		}
	}
	return rows, true, nil
}

// Browser is a live list of the game servers under one application key:
// a client.View of the summary fields, kept current by the cloud memory's
// notifications. Servers appear when they announce, change as they post,
// and vanish when they delist or disconnect.
type Browser struct {
	v *client.View
}

// Watch subscribes c to the directory under app and returns the live list
// once its first snapshot has arrived.
func Watch(ctx context.Context, c *client.Client, app string) (*Browser, error) {
	v, err := c.View(ctx, keys(app, summaryFields))
	if err != nil {
		return nil, fmt.Errorf("directory: watch: %w", err)
	}
	return &Browser{v: v}, nil
}

// Servers returns the listed servers that filter selects, as of the last
// notification.
func (b *Browser) Servers(filter Filter) []Server { return assemble(b.v.Rows(), filter) }

// Complete reports whether the list holds every listed server: false while
// a replica's snapshot is still missing or was cut by the download limit.
func (b *Browser) Complete() bool { return b.v.Complete() }

// Changed receives a value after changes to the list; see client.View.
func (b *Browser) Changed() <-chan struct{} { return b.v.Changed() }

// Close ends the subscription.
func (b *Browser) Close(ctx context.Context) error { return b.v.Close(ctx) }
