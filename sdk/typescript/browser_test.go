package typescript_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/cloudrift/cloudrift/client"
	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/internal/browsertest"
	"github.com/cloudrift/cloudrift/internal/testutil"
)

// page loads the SDK as an ES module, as a browser game does, and keeps
// what its client sees in window.state for the test to read.
const page = `<!doctype html>
<meta charset="utf-8">
<title>cloudrift SDK in a browser</title>
<script type="module">
import * as sdk from "/sdk/index.js";
window.sdk = sdk;
window.state = { messages: [], notifications: 0, rows: [], closed: null };
window.dial = async (url) => {
  const c = await sdk.connect({ url, token: "from-the-browser" });
  window.c = c;
  c.on("message", (m) => state.messages.push({ tag: m.tag, text: m.text() }));
  c.on("notification", () => state.notifications++);
  c.on("close", (err) => (state.closed = err.name));
  return sdk.refString(c.ref);
};
window.watch = async (primary) => {
  const v = await c.view([{ primary, secondary: 1 }]);
  const show = () => (state.rows = v.rows().map((r) => sdk.refString(r.uploader) + "=" + new TextDecoder().decode(r.data)).sort());
  v.on("change", show);
  show();
};
// roundTrips sends n echoes one after the other, pace ms apart (within the
// server's rate limit), and returns each round trip in milliseconds.
window.roundTrips = async (tag, n, pace) => {
  const out = [];
  for (let i = 0; i < n; i++) {
    const got = new Promise((resolve) => {
      const off = c.on("message", (m) => {
        if (m.tag === tag) { off(); resolve(); }
      });
    });
    const t0 = performance.now();
    c.send(tag, new Uint8Array(16));
    await got;
    out.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, pace));
  }
  return out;
};
// viaDirectory connects a Reconnector through the group's directory (a
// cross-origin fetch) and returns the server it reached after an echo.
window.viaDirectory = async (dir) => {
  const r = new sdk.Reconnector({ directory: dir });
  const c = await new Promise((resolve) => { r.on("connect", resolve); r.start(); });
  await new Promise((resolve) => {
    const off = c.on("message", (m) => { if (m.tag === 1) { off(); resolve(); } });
    c.send(1, new Uint8Array([1]));
  });
  await r.stop();
  return c.ref.server;
};
window.ready = true;
</script>
`

// servePage serves the page at / and the SDK, built by tsc, at /sdk/.
func servePage(t *testing.T) string {
	t.Helper()
	dist := browsertest.BuildSDK(t, ".")
	mux := http.NewServeMux()
	mux.Handle("/sdk/", http.StripPrefix("/sdk/", http.FileServer(http.Dir(dist))))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// TestBrowserSDK runs the SDK in headless Chromium against a real system:
// the page connects, echoes a message, and watches a cloud key that it
// and a Go client post to; the test reads what the page saw.
func TestBrowserSDK(t *testing.T) {
	b := browsertest.Start(t, 800, 600)
	pageURL := servePage(t)
	sys, urls := startSystem(t)
	tab := b.Open(t, pageURL)
	tab.Wait("the SDK module", "window.ready === true", "document.documentElement.outerHTML")

	var ref string
	tab.Eval(fmt.Sprintf("dial(%q)", urls[0]), &ref)
	if ref == "" {
		t.Fatal("no ref")
	}
	tab.Eval(`c.send(1, new TextEncoder().encode("hello from chromium")), true`, nil)
	tab.Wait("the echo", `state.messages.some((m) => m.tag === 1 && m.text === "hello from chromium")`, "state")
	var query string
	tab.Eval(`new Promise((resolve) => { const off = c.on("message", (m) => { if (m.tag === 3) { off(); resolve(m.json().query); } }); c.send(3, new Uint8Array()); })`, &query)
	if query != "from-the-browser" {
		t.Fatalf("Authenticate saw token %q, want the page's", query)
	}

	// The page watches a key; it and a Go client on the other client
	// server post under it.
	tab.Eval(`watch("browser-test")`, nil)
	tab.Eval(`c.post({ primary: "browser-test", secondary: 1 }, new TextEncoder().encode("page")).then(() => true)`, nil)
	ctx := testutil.Context(t)
	gc, err := client.Dial(ctx, client.Options{URL: urls[1]})
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	key := cloud.Key{Primary: "browser-test", Secondary: 1}
	if err := gc.Post(ctx, key, []byte("go")); err != nil {
		t.Fatal(err)
	}
	want := []string{ref + "=page", gc.Ref().String() + "=go"}
	slices.Sort(want)
	tab.Wait("both rows in the page's view", fmt.Sprintf("JSON.stringify(state.rows) === %q", mustJSON(want)), "state")
	if err := gc.Release(ctx, key); err != nil {
		t.Fatal(err)
	}
	tab.Wait("the Go client's row gone from the view", fmt.Sprintf("JSON.stringify(state.rows) === %q", mustJSON([]string{ref + "=page"})), "state")
	var notes int
	tab.Eval("state.notifications", &notes)
	if notes < 2 {
		t.Fatalf("%d notifications, want at least 2 (updated, deleted)", notes)
	}

	tab.Eval("c.close().then(() => true)", nil)
	tab.Wait("the close event", `state.closed === "ClosedError"`, "state")

	// The group's directory answers the page's cross-origin fetch, and
	// a Reconnector connects through it.
	var server string
	tab.Eval(fmt.Sprintf("viaDirectory(%q)", "http://"+sys.Server("client-1").Addr()+"/servers"), &server)
	if server != "client-1" && server != "client-2" {
		t.Fatalf("the directory led to %q", server)
	}
}

// TestBrowserRoundTrip measures the round trip of an echo from the
// browser client and from the Go SDK, one after the other against the same
// client server, and logs both (go test -run TestBrowserRoundTrip -v).
// It asserts nothing about speed.
func TestBrowserRoundTrip(t *testing.T) {
	const n = 400
	const pace = 2 * time.Millisecond // within the test system's 1000 messages/s
	b := browsertest.Start(t, 800, 600)
	pageURL := servePage(t)
	_, urls := startSystem(t)
	tab := b.Open(t, pageURL)
	tab.Wait("the SDK module", "window.ready === true", "document.documentElement.outerHTML")
	tab.Eval(fmt.Sprintf("dial(%q)", urls[0]), nil)
	var ms []float64
	tab.Eval(fmt.Sprintf("roundTrips(%d, %d, %d)", tagEcho, n, pace.Milliseconds()), &ms)
	browser := make([]time.Duration, len(ms))
	for i, m := range ms {
		browser[i] = time.Duration(m * float64(time.Millisecond))
	}

	ctx := testutil.Context(t)
	gc, err := client.Dial(ctx, client.Options{URL: urls[0]})
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	goRTT := make([]time.Duration, 0, n)
	payload := make([]byte, 16)
	for range n {
		t0 := time.Now()
		if err := gc.Send(tagEcho, payload); err != nil {
			t.Fatal(err)
		}
		if err := nextEcho(ctx, gc); err != nil {
			t.Fatal(err)
		}
		goRTT = append(goRTT, time.Since(t0))
		time.Sleep(pace)
	}
	t.Logf("echo round trip over %d sequential messages %s apart: browser (Chromium, TypeScript SDK) %s; Go SDK %s",
		n, pace, percentiles(browser), percentiles(goRTT))
}

// nextEcho waits for gc's next echo.
func nextEcho(ctx context.Context, gc *client.Client) error {
	for {
		select {
		case m, ok := <-gc.Messages():
			if !ok {
				return gc.Err()
			}
			if m.Tag == tagEcho {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// percentiles formats p50, p90 and p99 of ds.
func percentiles(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[int(p*float64(len(s)-1))] }
	return fmt.Sprintf("p50 %s p90 %s p99 %s", at(0.5).Round(time.Microsecond), at(0.9).Round(time.Microsecond), at(0.99).Round(time.Microsecond))
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
