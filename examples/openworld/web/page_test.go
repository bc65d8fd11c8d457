package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

// TestPageWithoutSDK: a binary built without the generated SDK modules
// still serves the page, and its /sdk/ path says how to build them.
func TestPageWithoutSDK(t *testing.T) {
	get := func(files fstest.MapFS, path string) (int, string) {
		srv := httptest.NewServer(pageHandler(files, []byte(`{}`)))
		defer srv.Close()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	files := fstest.MapFS{"index.html": {Data: []byte("<!doctype html>")}}
	for path, want := range map[string]int{"/": http.StatusOK, "/config.json": http.StatusOK, "/sdk/index.js": http.StatusNotImplemented} {
		code, body := get(files, path)
		if code != want {
			t.Errorf("GET %s: %d, want %d", path, code, want)
		}
		if want == http.StatusNotImplemented && !strings.Contains(body, "go generate ./examples/openworld/web") {
			t.Errorf("GET %s says %q; want how to build the SDK", path, body)
		}
	}
	files["sdk/index.js"] = &fstest.MapFile{Data: []byte("export {}")}
	if code, _ := get(files, "/sdk/index.js"); code != http.StatusOK {
		t.Errorf("with the SDK built, GET /sdk/index.js: %d", code)
	}
}
