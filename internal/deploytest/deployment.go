package deploytest

import (
	"os"
	"strings"
)

// Groups is the groups block of the deployment's system file, which
// bench/discovery shares: an external front group that dials mid, an
// internal group that dials back.
const Groups = `groups:
  - name: front
    visibility: external
    connectsTo: [mid]
  - name: mid
    visibility: internal
    connectsTo: [back]
  - name: back
    visibility: internal
`

// Peers returns the groups whose servers a server of group links with,
// either way, in Groups.
func Peers(group string) []string {
	switch group {
	case "front", "back":
		return []string{"mid"}
	case "mid":
		return []string{"front", "back"}
	}
	return nil
}

// CleanEnv is this process's environment without CONSUL_* and
// CLOUDRIFT_*, for the servers it starts: a developer's settings must not
// leak into them.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONSUL_") && !strings.HasPrefix(kv, "CLOUDRIFT_") {
			env = append(env, kv)
		}
	}
	return env
}
