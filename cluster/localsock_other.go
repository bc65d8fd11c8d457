//go:build !unix

package cluster

import "fmt"

// localSockets says whether links.socketDir's zero value turns same-host
// sockets on.
const localSockets = false

// secureSocketDir refuses every directory where file ownership cannot be
// checked the Unix way: links stay on TCP.
func secureSocketDir(dir string) error {
	return fmt.Errorf("%w: same-host sockets are implemented on Unix systems only", errSocketDir)
}
