package node

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFS flushes the whole file system holding dir: kubo's flatfs writes
// blocks without fsync, and syncfs covers every block file and the renames
// into place in one call.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
