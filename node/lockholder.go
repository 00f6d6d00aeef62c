package node

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ipfs/kubo/repo/fsrepo"
	"golang.org/x/sys/unix"
)

// Identity reads the peer ID and profile of the repo at repoPath from its
// files, without opening it or taking its lock: what `status` can still
// show while another process holds the repo.
func Identity(repoPath string) (id, profile string, err error) {
	return readIdentity(repoPath)
}

// LockHolder returns the pid of the process holding the repo lock at
// repoPath; 0 when no process holds it, or the holder is in another pid
// namespace. kubo takes the lock (go-fs-lock, go4.org/lock) as an fcntl
// write lock on the whole of repo.lock, so F_GETLK names the holder; the
// file's own contents are not trusted for it (a crashed run leaves them).
// Hand-written: no library asks a POSIX lock who holds it.
func LockHolder(repoPath string) (int, error) {
	f, err := os.Open(filepath.Join(repoPath, fsrepo.LockFile))
	if err != nil {
		return 0, fmt.Errorf("reading the repo lock: %w", err)
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil {
		return 0, fmt.Errorf("asking who holds the repo lock: %w", err)
	}
	if lk.Type == unix.F_UNLCK {
		return 0, nil
	}
	return int(lk.Pid), nil
}
