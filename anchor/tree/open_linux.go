package tree

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

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

// statBeneath is Stat through openat2: an O_PATH descriptor (which opens no
// FIFO or device) and fstat, following symlinks inside the root. It uses
// the raw descriptor (no *os.File: that adds an fcntl, a finalizer and a
// poller check per call), since an anchoring run stats every selected file
// to consult its stat cache.
func (r Root) statBeneath(rel string) (fs.FileInfo, bool, error) {
	if r.dirf == nil {
		return nil, false, nil
	}
	rc, err := r.dirf.SyscallConn()
	if err != nil {
		return nil, false, nil
	}
	how := unix.OpenHow{
		Flags:   uint64(unix.O_PATH | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	var st syscall.Stat_t
	var oerr, serr error
	cerr := rc.Control(func(dirfd uintptr) {
		fd := -1
		for range 8 { // as openBeneath: EAGAIN/EINTR ask to try again
			fd, oerr = unix.Openat2(int(dirfd), rel, &how)
			if oerr != unix.EAGAIN && oerr != unix.EINTR {
				break
			}
		}
		if oerr != nil {
			return
		}
		serr = syscall.Fstat(fd, &st)
		unix.Close(fd)
	})
	switch {
	case cerr != nil:
		return nil, false, nil
	case oerr == nil && serr == nil:
		return &statInfo{name: filepath.Base(r.Path(rel)), sys: st}, true, nil
	case oerr == nil:
		return nil, true, &os.PathError{Op: "fstat", Path: r.Path(rel), Err: serr}
	case errors.Is(oerr, unix.ENOSYS), errors.Is(oerr, unix.EPERM), errors.Is(oerr, unix.EAGAIN):
		return nil, false, nil
	case errors.Is(oerr, unix.EXDEV):
		return nil, true, fmt.Errorf("%w: opening %q leads outside %s (through a symlink that is absolute or climbs out)", ErrOutsideRoot, rel, r.dir)
	default:
		return nil, true, &os.PathError{Op: "openat2", Path: r.Path(rel), Err: oerr}
	}
}

// statInfo is an fs.FileInfo of a raw stat, read as os.Stat reads it
// (os has no constructor for one); Sys is the *syscall.Stat_t.
type statInfo struct {
	name string
	sys  syscall.Stat_t
}

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.sys.Size }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.sys.Mtim.Unix()) }
func (s *statInfo) IsDir() bool        { return s.Mode().IsDir() }
func (s *statInfo) Sys() any           { return &s.sys }

// Mode is os's fillFileStatFromSys mapping of st_mode.
func (s *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.sys.Mode & 0o777)
	switch s.sys.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if s.sys.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if s.sys.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if s.sys.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}
