package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// parseJSONLines checks that every line of out is a JSON object with a level
// and a message, and returns them.
func parseJSONLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("stderr line is not JSON (%v): %q\nall:\n%s", err, line, out)
		}
		if _, ok := m["level"].(string); !ok || m["message"] == nil || m["time"] == nil {
			t.Fatalf("stderr line without level, time or message: %q", line)
		}
		objs = append(objs, m)
	}
	return objs
}

// hasLine reports whether one of objs has level and a message containing
// text.
func hasLine(objs []map[string]any, level, text string) bool {
	for _, m := range objs {
		if m["level"] == level && strings.Contains(m["message"].(string), text) {
			return true
		}
	}
	return false
}

func TestRunLogJSONWritesOnlyJSON(t *testing.T) {
	c := start(t, "run", "-config", repoFile, "-group", "client", "-listen", "127.0.0.1:0", "-log-json")
	c.Match(t, &c.Stdout, listening)
	if code := c.Stop(t); code != 0 {
		t.Errorf("exit %d after cancel, want 0; stderr:\n%s", code, &c.Stderr)
	}
	objs := parseJSONLines(t, c.Stderr.String())
	for _, want := range []struct{ level, text string }{
		{"warn", "the embedded registry lives in this process"},
		{"info", "draining: moving players"},
		{"info", "server draining"},
		{"info", "server stopped"},
	} {
		if !hasLine(objs, want.level, want.text) {
			t.Errorf("no %s line with %q in:\n%s", want.level, want.text, &c.Stderr)
		}
	}
}

func TestLogJSONCoversProblems(t *testing.T) {
	// A bad flag after -log-json: the usage is JSON too.
	code, _, errOut := runSync(t, "run", "-log-json", "-group", "client", "-nosuch")
	if code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
	if objs := parseJSONLines(t, errOut); !hasLine(objs, "error", "flag provided but not defined: -nosuch") {
		t.Errorf("no error line naming the flag:\n%s", errOut)
	}
	// Problems of the file, from dev.
	path := writeFile(t, "bad.yaml", badPlugins)
	t.Setenv("CLOUDRIFT_LOG_JSON", "true")
	code, _, errOut = runSync(t, "dev", "-config", path)
	if code != exitFail {
		t.Errorf("exit %d, want %d", code, exitFail)
	}
	if objs := parseJSONLines(t, errOut); !hasLine(objs, "error", path+":7:") {
		t.Errorf("no error line naming line 7:\n%s", errOut)
	}
}

func TestDevLogJSONWritesOnlyJSON(t *testing.T) {
	c := start(t, "dev", "-config", repoFile, "-interval", "100ms", "-log-json", "-log-level", "info", "-bots", "0")
	c.Match(t, &c.Stdout, allUp)
	if code := c.Stop(t); code != 0 {
		t.Errorf("exit %d after cancel, want 0; stderr:\n%s", code, &c.Stderr)
	}
	objs := parseJSONLines(t, c.Stderr.String())
	if !hasLine(objs, "info", "stopping") || !hasLine(objs, "info", "link up") {
		t.Errorf("no stopping or link up line:\n%s", &c.Stderr)
	}
}
