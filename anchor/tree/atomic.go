package tree

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// AtomicFile is a file being written in the root that replaces rel only
// when Commit succeeds: until then it is a temp file created exclusively
// next to rel, so a writer that streams gigabytes (a release bundle) needs
// no buffer of the whole, and a crash or an Abort leaves rel as it was.
type AtomicFile struct {
	*os.File
	r         Root
	name, tmp string
	perm      fs.FileMode
	done      bool
}

// CreateAtomic starts replacing the root-relative file rel, confined to the
// root at every step (the temp file, the rename, the directory sync).
// Write to it, then Commit or Abort; Abort after Commit does nothing, so
// `defer f.Abort()` cleans up every early return.
func (r Root) CreateAtomic(rel string, perm fs.FileMode) (*AtomicFile, error) {
	name, err := r.check(rel)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(name)
	if err := r.r.MkdirAll(dir, 0o755); err != nil {
		return nil, r.confined("creating", rel, err)
	}
	var f *os.File
	var tmp string
	for range 100 {
		tmp = filepath.Join(dir, "."+filepath.Base(name)+".tmp-"+randomSuffix())
		f, err = r.r.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return nil, r.confined("creating", rel, err)
	}
	return &AtomicFile{File: f, r: r, name: name, tmp: tmp, perm: perm}, nil
}

// Commit makes the written bytes durable and puts them at rel: fsync,
// rename over rel, fsync the directory.
func (a *AtomicFile) Commit() error {
	if a.done {
		return fmt.Errorf("%s: already committed or aborted", a.name)
	}
	rel := filepath.ToSlash(a.name)
	err := a.Chmod(a.perm)
	if err == nil {
		err = a.Sync()
	}
	if cerr := a.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = a.r.confined("renaming onto", rel, a.r.r.Rename(a.tmp, a.name))
	}
	a.done = true
	if err != nil {
		a.r.r.Remove(a.tmp)
		return err
	}
	dir := filepath.Dir(a.name)
	d, err := a.r.r.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return a.r.confined("opening", filepath.ToSlash(dir), err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", a.r.Path(filepath.ToSlash(dir)), err)
	}
	return nil
}

// Abort drops the temp file; rel is untouched.
func (a *AtomicFile) Abort() {
	if a.done {
		return
	}
	a.done = true
	a.Close()
	a.r.r.Remove(a.tmp)
}
