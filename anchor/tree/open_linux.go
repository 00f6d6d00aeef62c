package tree

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// openBeneath opens rel (OS separators) for reading with one openat2 call
// confined by the kernel to the root directory (RESOLVE_BENEATH: absolute
// symlinks and ".." that climb out are refused, as os.Root refuses them).
// os.Root resolves a path one component at a time (an openat and a close
// per directory), which for a file eight levels deep was three quarters of
// the syscalls of anchoring a small file. ok is false when the kernel
// lacks openat2 (before 5.6, or a seccomp filter): the caller uses os.Root.
func (r Root) openBeneath(rel string, flags int) (f *os.File, ok bool, err error) {
	if r.dirf == nil {
		return nil, false, nil
	}
	rc, err := r.dirf.SyscallConn()
	if err != nil {
		return nil, false, nil
	}
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd := -1
	var oerr error
	cerr := rc.Control(func(dirfd uintptr) {
		// EAGAIN: a rename elsewhere in the tree raced the lookup; the
		// kernel asks to try again.
		for range 8 {
			fd, oerr = unix.Openat2(int(dirfd), rel, &how)
			if oerr != unix.EAGAIN && oerr != unix.EINTR {
				return
			}
		}
	})
	if cerr != nil {
		return nil, false, nil
	}
	switch {
	case oerr == nil:
		return os.NewFile(uintptr(fd), r.Path(rel)), true, nil
	case errors.Is(oerr, unix.ENOSYS), errors.Is(oerr, unix.EPERM), errors.Is(oerr, unix.EAGAIN):
		return nil, false, nil
	case errors.Is(oerr, unix.EXDEV):
		return nil, true, fmt.Errorf("%w: opening %q leads outside %s (through a symlink that is absolute or climbs out)", ErrOutsideRoot, rel, r.dir)
	default:
		return nil, true, &os.PathError{Op: "openat2", Path: r.Path(rel), Err: oerr}
	}
}

// statBeneath is Stat through openBeneath: an O_PATH descriptor (which
// opens no FIFO or device) and fstat, following symlinks inside the root.
func (r Root) statBeneath(rel string) (fs.FileInfo, bool, error) {
	f, ok, err := r.openBeneath(rel, unix.O_PATH)
	if !ok || err != nil {
		return nil, ok, err
	}
	defer f.Close()
	st, err := f.Stat()
	return st, true, err
}
