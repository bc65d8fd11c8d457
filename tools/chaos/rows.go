package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cloud"
)

// getTimeout bounds each fresh Get of a check.
const getTimeout = 5 * time.Second

// rowsCheck is the outcome of one look at the cloud memory.
type rowsCheck struct {
	lost    int    // rows of ready uploaders missing, doubled or stale
	problem string // what is not consistent; "" when all is
	// gateWait is how long the check waited for uploads in flight, and
	// slowest the slowest Get.
	gateWait, slowest time.Duration
}

// checkRows holds the rows to the uploaders' records with every upload
// stopped: through every ready uploader's own connection, a fresh Get
// must return each ready uploader's row under each key exactly once with
// its latest value, and no row of an uploader that is gone; and the
// uploader's View must equal that Get.
func (f *fleet) checkRows(ctx context.Context) (out rowsCheck) {
	waitFrom := time.Now()
	f.gate.Lock()
	defer f.gate.Unlock()
	out.gateWait = time.Since(waitFrom)
	type ready struct {
		u      *uploader
		c      *client.Client
		v      *client.View
		latest map[cloud.Key]string
	}
	var all []ready
	var problems []string
	note := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	defer func() {
		if len(problems) > 4 {
			problems = append(problems[:4], fmt.Sprintf("and %d more", len(problems)-4))
		}
		out.problem = strings.Join(problems, "; ")
	}()
	for _, u := range f.uploaders {
		c, v, latest, dirty, lastErr, ok := u.state()
		if !ok {
			note("%s is not connected (last post error: %v)", u.name, lastErr)
			continue
		}
		if dirty > 0 {
			note("%s has %d rows whose last post is unconfirmed (last post error: %v)", u.name, dirty, lastErr)
		}
		all = append(all, ready{u, c, v, latest})
	}
	refs := map[client.ClientRef]string{}
	for _, r := range all {
		refs[r.c.Ref()] = r.u.name
	}
	for _, r := range all {
		gctx, cancel := context.WithTimeout(ctx, getTimeout)
		getFrom := time.Now()
		res, err := r.c.Get(gctx, cloud.Query{Keys: keys()})
		out.slowest = max(out.slowest, time.Since(getFrom))
		cancel()
		if err != nil {
			note("%s: Get: %v", r.u.name, err)
			continue
		}
		if res.Partial || res.Truncated {
			note("%s: Get partial %v (missing %v), truncated %v", r.u.name, res.Partial, res.Missing, res.Truncated)
		}
		got := map[string]int{}
		for _, row := range res.Rows {
			name, ok := refs[row.Uploader]
			if !ok {
				note("%s: Get holds %s of %v, an uploader that is gone", r.u.name, row.Key, row.Uploader)
				continue
			}
			got[fmt.Sprintf("%s %s=%s", name, row.Key, row.Data)]++
		}
		for _, w := range all {
			for k, val := range w.latest {
				key := fmt.Sprintf("%s %s=%s", w.u.name, k, val)
				if n := got[key]; n != 1 {
					out.lost++
					note("%s: Get holds %s %d times, want once (rows %s)", r.u.name, key, n, describe(res.Rows, refs))
				}
			}
		}
		if view, get := describe(r.v.Rows(), refs), describe(res.Rows, refs); view != get {
			note("%s: View %s, fresh Get %s", r.u.name, view, get)
		} else if !r.v.Complete() {
			note("%s: View is not complete", r.u.name)
		}
	}
	return out
}

// describe formats rows as "name key=value" in a stable order.
func describe(rows []cloud.Row, refs map[client.ClientRef]string) string {
	var s []string
	for _, r := range rows {
		name, ok := refs[r.Uploader]
		if !ok {
			name = fmt.Sprint(r.Uploader)
		}
		s = append(s, fmt.Sprintf("%s %s=%s", name, r.Key, r.Data))
	}
	slices.Sort(s)
	return "[" + strings.Join(s, ", ") + "]"
}
