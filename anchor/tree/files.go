package tree

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrLocked means another process holds the directory lock.
var ErrLocked = errors.New("locked by another ssid-anchor process")

// WriteFileAtomic replaces path with data so that a crash at any instant
// leaves either the old or the new file: temp file in the same directory,
// fsync, rename, fsync the directory.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

// LockDir takes an exclusive flock on dir (the manifest is replaced by
// rename, so the file itself cannot carry the lock).
func LockDir(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		d.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return func() {
		unix.Flock(int(d.Fd()), unix.LOCK_UN)
		d.Close()
	}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// LockDir takes the exclusive lock of a root-relative directory, creating
// it (confined to the root) when missing.
func (r Root) LockDir(rel string) (func(), error) {
	name, err := r.check(rel)
	if err != nil {
		return nil, err
	}
	if err := r.r.MkdirAll(name, 0o755); err != nil {
		return nil, r.confined("creating", rel, err)
	}
	d, err := r.r.OpenFile(name, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, r.confined("opening", rel, err)
	}
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		d.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, r.Path(rel))
		}
		return nil, fmt.Errorf("locking %s: %w", r.Path(rel), err)
	}
	return func() {
		unix.Flock(int(d.Fd()), unix.LOCK_UN)
		d.Close()
	}, nil
}

// WriteFileAtomic replaces the root-relative file rel with data, confined
// to the root at every step: a temp file created exclusively next to it,
// fsynced, renamed over it (os.Root.Rename), and the directory fsynced. A
// crash at any instant leaves the old or the new file.
func (r Root) WriteFileAtomic(rel string, data []byte, perm fs.FileMode) error {
	f, err := r.CreateAtomic(rel, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}

// IsTemp reports whether name (a base name) is a temp file WriteFileAtomic
// makes for target (a base name): such leftovers of a crash are the tool's
// own and never selected for anchoring.
func IsTemp(name, target string) bool {
	return strings.HasPrefix(name, "."+target+".tmp-")
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
