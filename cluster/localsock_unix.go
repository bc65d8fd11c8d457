//go:build unix

package cluster

import (
	"fmt"
	"os"
	"syscall"
)

// localSockets says whether links.socketDir's zero value turns same-host
// sockets on.
const localSockets = true

// secureSocketDir makes dir (mode 0700) when missing, and checks that it
// is a directory of this process's user that no other user may write to:
// whoever can write there could put a socket where servers look.
func secureSocketDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%w: %w", errSocketDir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", errSocketDir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", errSocketDir, dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%w: %s belongs to user %d, not to this server's user %d", errSocketDir, dir, st.Uid, os.Getuid())
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%w: other users may write to %s (mode %04o)", errSocketDir, dir, perm)
	}
	return nil
}
