// Package browsertest drives web pages in headless Chromium for tests: it
// starts the browser, opens tabs, evaluates JavaScript in them, waits for
// a page's state, and builds the TypeScript SDK for pages to import.
//
// Tests that use it skip when Chromium (Debian package chromium) or tsc
// (node-typescript) is not on PATH, unless CI=true, where they fail. Every
// call fails the test itself, so call them from the test's goroutine.
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/cloudrift/cloudrift/internal/testutil"
)

// Chromium's program names, tried in order.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome"}

// Tool returns the path of the first of names on PATH. Without one it
// skips t, or fails it under CI=true, naming the Debian package.
func Tool(t testing.TB, pkg string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s is not on PATH (Debian package %s)", strings.Join(names, " or "), pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// BuildSDK compiles the TypeScript SDK in sdkDir (the directory of its
// tsconfig.json) into a new temporary directory and returns it: the ES
// modules a page imports (index.js and the files it imports).
func BuildSDK(t testing.TB, sdkDir string) string {
	t.Helper()
	tsc := Tool(t, "node-typescript", "tsc")
	out := t.TempDir()
	cmd := exec.Command(tsc, "-p", sdkDir, "--outDir", out, "--declaration", "false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, b)
	}
	return out
}

// Browser is a headless Chromium that lives until the test ends.
type Browser struct {
	ctx context.Context
}

// Start starts Chromium for t, with a window of width × height pixels.
func Start(t testing.TB, width, height int) *Browser {
	t.Helper()
	path := Tool(t, "chromium", chromiumNames...)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.WindowSize(width, height),
		chromedp.UserDataDir(t.TempDir()),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to sandbox as root
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return &Browser{ctx: ctx}
}

// Tab is one page of a Browser.
type Tab struct {
	t   testing.TB
	ctx context.Context
}

// Open opens url in a new tab, which closes when the test ends. The page's
// console messages and uncaught exceptions go to the test's log.
func (b *Browser) Open(t testing.TB, url string) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	tab := &Tab{t: t, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("new tab: %v", err)
	}
	// Events may arrive until the tab is gone; the log takes none after
	// the test (the cleanups run last first, so this one before cancel).
	var mu sync.Mutex
	done := false
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		done = true
	})
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return
		}
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			t.Logf("page console.%s: %s", ev.Type, strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			t.Logf("page exception: %s", msg)
		}
	}); err != nil {
		t.Fatalf("listen: %v", err)
	}
	tab.do(chromedp.Navigate(url))
	return tab
}

func (tab *Tab) do(a chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, testutil.Patience)
	defer cancel()
	if err := chromedp.Do(ctx, a); err != nil {
		tab.t.Fatal(err)
	}
}

// Eval evaluates expr in the tab, awaiting it when it is a promise, and
// decodes its value (JSON-serializable) into out, which may be nil.
func (tab *Tab) Eval(expr string, out any) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, testutil.Patience)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tab.t.Fatalf("eval %s: %v", expr, err)
	}
	if out != nil && len(v) > 0 {
		if err := json.Unmarshal(v, out); err != nil {
			tab.t.Fatalf("eval %s: %v in %s", expr, err, v)
		}
	}
}

// Wait polls expr every 20ms until it is truthy, failing the test, naming
// what and showing the value of show (an expression), after
// testutil.Patience.
func (tab *Tab) Wait(what, expr, show string) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, testutil.Patience)
	defer cancel()
	// An expression that throws counts as false: it may read what the
	// page's module has not defined yet.
	guarded := "(() => { try { return !!(" + expr + "); } catch (e) { return false; } })()"
	poll := chromedp.Poll[chromedp.Void](guarded, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(0))
	if _, err := chromedp.Run(ctx, poll); err != nil {
		var state json.RawMessage
		sctx, scancel := context.WithTimeout(tab.ctx, 5*time.Second)
		defer scancel()
		state, _ = chromedp.Run(sctx, chromedp.Evaluate[json.RawMessage](show))
		tab.t.Fatalf("waiting for %s: %v; page: %s", what, err, state)
	}
}

// Viewport sets the size of the tab's page, in CSS pixels.
func (tab *Tab) Viewport(width, height int) {
	tab.t.Helper()
	tab.do(chromedp.EmulateViewport(int64(width), int64(height)))
}

// Screenshot returns a PNG of the tab's viewport.
func (tab *Tab) Screenshot() []byte {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, testutil.Patience)
	defer cancel()
	b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tab.t.Fatal(err)
	}
	return b
}
