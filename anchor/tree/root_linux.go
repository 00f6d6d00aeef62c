package tree

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// errUseResolve asks Root.Open to take the portable path.
var errUseResolve = errors.New("resolve in user space")

func openBeneath(root, rel string) (*os.File, error) {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, errUseResolve
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, filepath.FromSlash(rel), &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	})
	switch {
	case err == nil:
		return os.NewFile(uintptr(fd), filepath.Join(root, rel)), nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EACCES), errors.Is(err, unix.EISDIR):
		return nil, &os.PathError{Op: "open", Path: rel, Err: err}
	default:
		// EXDEV (a link leading up or absolute), ENOSYS (old kernel), ...
		return nil, errUseResolve
	}
}
