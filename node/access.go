package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
)

// ErrPermission means this user may not open the repo (or its lock or
// config): it belongs to another user, typically the daemon's service
// account. cmd maps it to exit 3 with the hint to run as that user.
var ErrPermission = errors.New("ipfs repo is not accessible to this user")

// AccessError says whose the repo is. It matches ErrPermission.
type AccessError struct {
	Repo string
	// Path is what could not be opened (the repo, its config, its lock).
	Path string
	// Owner is the user that owns Path's nearest existing part ("" when it
	// cannot be told); Mine is true when that is this process's user.
	Owner string
	Mine  bool
	Err   error
}

func (e *AccessError) Error() string {
	switch {
	case e.Owner == "":
		return fmt.Sprintf("%v: %s: %v", ErrPermission, e.Repo, e.Err)
	case e.Mine:
		return fmt.Sprintf("%v: %s is yours but its permissions refuse you (%v)", ErrPermission, e.Path, e.Err)
	}
	return fmt.Sprintf("%v: %s belongs to %s, and this command runs as %s (%v)", ErrPermission, e.Repo, e.Owner, currentUser(), e.Err)
}

func (e *AccessError) Unwrap() []error { return []error{ErrPermission, e.Err} }

// PermissionError turns a permission error met on path, inside repoPath
// (the repo itself, its config, its lock, the appliance config in it), into
// an *AccessError naming the repo's owner; any other error is returned as
// it is.
func PermissionError(repoPath, path string, err error) error {
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	e := &AccessError{Repo: repoPath, Path: path, Err: err}
	if uid, ok := ownerUID(nearestExisting(repoPath)); ok {
		e.Owner, e.Mine = userName(uid), uid == os.Getuid()
	}
	return e
}

// checkAccess tells a repo that this user cannot read from one that is not
// there: kubo's IsInitialized says "not initialised" for both.
func checkAccess(repoPath string) error {
	cfg := filepath.Join(repoPath, "config")
	if _, err := os.Stat(cfg); err != nil {
		return PermissionError(repoPath, cfg, err)
	}
	f, err := os.Open(cfg)
	if err != nil {
		return PermissionError(repoPath, cfg, err)
	}
	return f.Close()
}

// CheckAccess fails with an *AccessError when this user cannot use the
// repo at repoPath: read its config and write in it (the lock, the remote
// pin queue, the chain head). A repo that does not exist is not refused
// here; Open says it is not initialised. Commands that need the repo call
// it first, so every one of them fails the same way (exit 3) instead of
// on whichever file it touches first.
func CheckAccess(repoPath string) error {
	if err := checkAccess(repoPath); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if err := writable(repoPath); err != nil {
		return PermissionError(repoPath, repoPath, err)
	}
	return nil
}

// nearestExisting is p or the closest parent that can be stat'ed.
func nearestExisting(p string) string {
	for {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username + " (uid " + strconv.Itoa(uid) + ")"
	}
	return "uid " + strconv.Itoa(uid)
}

func currentUser() string { return userName(os.Getuid()) }
