package dashboard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/cloudrift/cloudrift/ops"
)

// result is what one operations port answered.
type result struct {
	target   string
	statuses []ops.Status
	closes   map[closeKey]uint64 // from /metrics
	err      error               // the port did not answer; statuses and closes are empty
}

// closeKey names one close counter of /metrics.
type closeKey struct {
	kind   string // "link", "client" or "refused"
	group  string
	reason string
}

// closeSeries are the /metrics series the dashboard reads, by kind.
var closeSeries = map[string]string{
	"cloudrift_link_closes_total":        "link",
	"cloudrift_client_closes_total":      "client",
	"cloudrift_handshakes_refused_total": "refused",
}

// fetchAll asks every target at once.
func fetchAll(ctx context.Context, c *http.Client, targets []string) []result {
	out := make([]result, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = fetch(ctx, c, t)
		}()
	}
	wg.Wait()
	return out
}

func fetch(ctx context.Context, c *http.Client, target string) result {
	r := result{target: target}
	base := strings.TrimRight(target, "/")
	body, err := get(ctx, c, base+"/status")
	if err != nil {
		r.err = err
		return r
	}
	if r.statuses, err = decodeStatus(body); err != nil {
		r.err = err
		return r
	}
	body, err = get(ctx, c, base+"/metrics")
	if err != nil {
		r.err = err
		r.statuses = nil
		return r
	}
	r.closes = parseCloses(body)
	return r
}

func get(ctx context.Context, c *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, nil
}

// decodeStatus decodes /status: one server's object, or an array of them
// from a port serving several.
func decodeStatus(b []byte) ([]ops.Status, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var all []ops.Status
		err := json.Unmarshal(b, &all)
		return all, err
	}
	var one ops.Status
	if err := json.Unmarshal(b, &one); err != nil {
		return nil, err
	}
	return []ops.Status{one}, nil
}

// parseCloses reads the close counters from a Prometheus text exposition.
func parseCloses(b []byte) map[closeKey]uint64 {
	out := map[closeKey]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		kind, ok := closeSeries[name]
		if !ok {
			continue
		}
		labels, value, ok := splitLabels(rest)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		out[closeKey{kind: kind, group: labels["group"], reason: labels["reason"]}] += uint64(v)
	}
	return out
}

// splitLabels parses `a="x",b="y"} value` into the labels and the value.
func splitLabels(s string) (map[string]string, string, bool) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, ", ")
		if strings.HasPrefix(s, "}") {
			return labels, s[1:], true
		}
		name, rest, ok := strings.Cut(s, "=")
		if !ok || !strings.HasPrefix(rest, `"`) {
			return nil, "", false
		}
		// The value ends at the first unescaped quote.
		end := 1
		for end < len(rest) && rest[end] != '"' {
			if rest[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(rest) {
			return nil, "", false
		}
		v, err := strconv.Unquote(rest[:end+1])
		if err != nil {
			v = rest[1:end]
		}
		labels[name] = v
		s = rest[end+1:]
	}
}
