package tree

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
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
	fd, ok, err := r.openBeneathFD(rel, flags)
	if !ok || err != nil {
		return nil, ok, err
	}
	return os.NewFile(uintptr(fd), r.Path(rel)), true, nil
}

// openBeneathFD is openBeneath's openat2, returning the raw descriptor
// (the caller closes it). ok is false when openat2 is not available.
func (r Root) openBeneathFD(rel string, flags int) (fd int, ok bool, err error) {
	if r.dirf == nil {
		return -1, false, nil
	}
	rc, err := r.dirf.SyscallConn()
	if err != nil {
		return -1, false, nil
	}
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd = -1
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
		return -1, false, nil
	}
	switch {
	case oerr == nil:
		return fd, true, nil
	case errors.Is(oerr, unix.ENOSYS), errors.Is(oerr, unix.EPERM), errors.Is(oerr, unix.EAGAIN):
		return -1, false, nil
	case errors.Is(oerr, unix.EXDEV):
		return -1, true, fmt.Errorf("%w: opening %q leads outside %s (through a symlink that is absolute or climbs out)", ErrOutsideRoot, rel, r.dir)
	default:
		return -1, true, &os.PathError{Op: "openat2", Path: r.Path(rel), Err: oerr}
	}
}

// statBeneath is Stat through openat2: an O_PATH descriptor (which opens no
// FIFO or device) and fstat, following symlinks inside the root. It uses
// the raw descriptor (no *os.File: that adds an fcntl, a finalizer and a
// poller check per call), since an anchoring run stats every selected file
// to consult its stat cache.
func (r Root) statBeneath(rel string) (fs.FileInfo, bool, error) {
	fd, ok, err := r.openBeneathFD(rel, unix.O_PATH)
	if !ok || err != nil {
		return nil, ok, err
	}
	defer unix.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, true, &os.PathError{Op: "fstat", Path: r.Path(rel), Err: err}
	}
	return &statInfo{name: filepath.Base(r.Path(rel)), sys: st}, true, nil
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

func (s *statInfo) Mode() fs.FileMode { return fileMode(s.sys.Mode) }

// fileMode is os's fillFileStatFromSys mapping of st_mode.
func fileMode(mode uint32) fs.FileMode {
	m := fs.FileMode(mode & 0o777)
	switch mode & syscall.S_IFMT {
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
	if mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// Dir is a directory of the tree opened once (O_PATH, confined by the
// kernel as every open is) to stat many of its files: one fstatat each,
// relative to the directory, instead of resolving every file's whole path
// from the root (an anchoring run stats every selected file for its stat
// cache). Stat follows no symlink itself: a symlinked file is stat'ed
// through Root.Stat, which follows it only inside the root.
type Dir struct {
	r   Root
	rel string
	fd  int
}

// OpenDir opens the root-relative directory rel ("." for the root). ok is
// false where Dir is not available (no openat2): use Root.Stat.
func (r Root) OpenDir(rel string) (d *Dir, ok bool, err error) {
	name := "."
	if rel != "." {
		if name, err = r.check(rel); err != nil {
			return nil, true, err
		}
	}
	fd, ok, err := r.openBeneathFD(name, unix.O_PATH|unix.O_DIRECTORY)
	if !ok || err != nil {
		return nil, ok, err
	}
	return &Dir{r: r, rel: rel, fd: fd}, true, nil
}

// Stat is Root.Stat of the directory's entry name (one path element).
func (d *Dir) Stat(name string) (fs.FileInfo, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("%q is not a name in %s", name, d.rel)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &os.PathError{Op: "fstatat", Path: d.r.Path(path.Join(d.rel, name)), Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return d.r.Stat(path.Join(d.rel, name))
	}
	return &dirStatInfo{name: name, sys: st}, nil
}

// dirStatInfo is Dir.Stat's fs.FileInfo; Sys is the *unix.Stat_t.
type dirStatInfo struct {
	name string
	sys  unix.Stat_t
}

func (s *dirStatInfo) Name() string       { return s.name }
func (s *dirStatInfo) Size() int64        { return s.sys.Size }
func (s *dirStatInfo) ModTime() time.Time { return time.Unix(s.sys.Mtim.Unix()) }
func (s *dirStatInfo) IsDir() bool        { return s.Mode().IsDir() }
func (s *dirStatInfo) Sys() any           { return &s.sys }
func (s *dirStatInfo) Mode() fs.FileMode  { return fileMode(s.sys.Mode) }

// Close releases the directory.
func (d *Dir) Close() error { return unix.Close(d.fd) }
