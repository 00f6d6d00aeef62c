package tree

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// ErrOutsideRoot marks a path that resolves outside the governance root.
var ErrOutsideRoot = errors.New("path is outside the governance root")

// Root is the governance tree (--root). Every path read because of config or
// an event goes through Resolve or Glob, which refuse anything that leaves it.
type Root struct {
	dir  string // absolute, as given
	real string // symlinks resolved
}

// OpenRoot checks that dir is an existing directory.
func OpenRoot(dir string) (Root, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Root{}, fmt.Errorf("root %q: %w", dir, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return Root{}, fmt.Errorf("root %s: %w", abs, err)
	}
	st, err := os.Stat(real)
	if err != nil {
		return Root{}, fmt.Errorf("root %s: %w", abs, err)
	}
	if !st.IsDir() {
		return Root{}, fmt.Errorf("root %s: not a directory", abs)
	}
	return Root{dir: abs, real: real}, nil
}

// Dir is the root's absolute path.
func (r Root) Dir() string { return r.dir }

// Resolve turns a root-relative path (with / separators) into an absolute
// one, refusing absolute paths, .. escapes and symlinks that lead out of the
// root. A path that does not exist yet is checked up to its deepest existing
// parent.
func (r Root) Resolve(rel string) (string, error) {
	if rel == "" {
		return "", fmt.Errorf("empty path")
	}
	if filepath.IsAbs(rel) || strings.HasPrefix(rel, "/") || filepath.VolumeName(rel) != "" {
		return "", fmt.Errorf("%w: %q is absolute; paths must be relative to %s", ErrOutsideRoot, rel, r.dir)
	}
	clean := filepath.Clean(filepath.FromSlash(rel))
	if clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%w: %q climbs out of %s", ErrOutsideRoot, rel, r.dir)
	}
	full := filepath.Join(r.real, clean)
	// Resolve the deepest part that exists, then re-attach the rest.
	existing, rest := full, ""
	for {
		if _, err := os.Lstat(existing); err == nil {
			break
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			break
		}
		rest = filepath.Join(filepath.Base(existing), rest)
		existing = parent
	}
	real, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return "", fmt.Errorf("resolving %q: %w", rel, err)
	}
	if !within(r.real, real) {
		return "", fmt.Errorf("%w: %q resolves to %s (through a symlink), outside %s", ErrOutsideRoot, rel, real, r.dir)
	}
	return filepath.Join(real, rest), nil
}

// Rel returns the root-relative, /-separated form of an absolute path that
// Resolve produced.
func (r Root) Rel(abs string) (string, error) {
	rel, err := filepath.Rel(r.real, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%w: %s", ErrOutsideRoot, abs)
	}
	return filepath.ToSlash(rel), nil
}

// Glob expands a root-relative pattern. Every match is checked; a match
// that escapes the root is an error, not a silent skip. Matches are returned
// as sorted root-relative paths of regular files.
func (r Root) Glob(pattern string) ([]string, error) {
	if filepath.IsAbs(pattern) || strings.HasPrefix(pattern, "/") {
		return nil, fmt.Errorf("%w: pattern %q is absolute", ErrOutsideRoot, pattern)
	}
	clean := filepath.Clean(filepath.FromSlash(pattern))
	if clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return nil, fmt.Errorf("%w: pattern %q climbs out of %s", ErrOutsideRoot, pattern, r.dir)
	}
	matches, err := filepath.Glob(filepath.Join(r.real, clean))
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", pattern, err)
	}
	dirOK := map[string]bool{} // parent directories already resolved inside the root
	var out []string
	for _, m := range matches {
		rel, err := filepath.Rel(r.real, m)
		if err != nil {
			return nil, err
		}
		st, err := os.Lstat(m)
		if err != nil {
			continue
		}
		parent := filepath.Dir(rel)
		if st.Mode()&fs.ModeSymlink != 0 || !dirOK[parent] {
			// Follow links the slow, careful way; a plain file in a
			// directory already checked needs nothing more.
			abs, err := r.Resolve(filepath.ToSlash(rel))
			if err != nil {
				return nil, err
			}
			if st, err = os.Stat(abs); err != nil {
				continue
			}
			if _, err := r.Resolve(filepath.ToSlash(parent)); err == nil {
				dirOK[parent] = true
			}
		}
		if st.Mode().IsRegular() {
			out = append(out, filepath.ToSlash(rel))
		}
	}
	sort.Strings(out)
	return out, nil
}

// Open opens a root-relative file for reading. The kernel confines the
// lookup to the root (openat2 RESOLVE_BENEATH), so a symlink swapped in
// after selection cannot lead outside. Symlinks the kernel will not follow
// beneath the root (absolute ones) are resolved and checked by Resolve.
func (r Root) Open(rel string) (*os.File, error) {
	if f, err := openBeneath(r.real, rel); err == nil || !errors.Is(err, errUseResolve) {
		return f, err
	}
	abs, err := r.Resolve(rel)
	if err != nil {
		return nil, err
	}
	return os.Open(abs)
}

func within(root, p string) bool {
	if p == root {
		return true
	}
	return strings.HasPrefix(p, strings.TrimSuffix(root, string(filepath.Separator))+string(filepath.Separator))
}

// Root24 is the measured Root-24-LOCK state of a tree.
type Root24 struct {
	// Modules are the NN_* directories found at the root.
	Modules []string `json:"modules"`
	// Missing lists the numbers 01..24 that have no directory.
	Missing []string `json:"missing,omitempty"`
	// Duplicates lists numbers that appear more than once.
	Duplicates []string `json:"duplicates,omitempty"`
	// Unexpected lists other root entries not named in the exceptions file.
	Unexpected []string `json:"unexpected,omitempty"`
	// ExceptionsFile is the exceptions list that was read, if any.
	ExceptionsFile string `json:"exceptions_file"`
	// Problems says in words why the lock is broken.
	Problems []string `json:"problems,omitempty"`
}

// OK reports whether the tree holds exactly the 24 modules plus exceptions.
func (s Root24) OK() bool { return len(s.Problems) == 0 }

// Status is the label telemetry shows: "active" when the lock holds,
// "violated" otherwise.
func (s Root24) Status() string {
	if s.OK() {
		return "active"
	}
	return "violated"
}

// RootExceptionsPath is where the allowed non-module root entries are listed.
const RootExceptionsPath = "23_compliance/exceptions/root_level_exceptions.yaml"

var moduleRe = regexp.MustCompile(`^([0-9]{2})_[A-Za-z0-9_.-]+$`)

// CheckRoot24 measures Root-24-LOCK: exactly one directory NN_* for each of
// 01..24 and no other root entry unless the exceptions file lists it. Names
// in the exceptions file are matched exactly (the old guard used substring
// matching, which let "README" excuse "READ").
func CheckRoot24(r Root) (Root24, error) {
	entries, err := os.ReadDir(r.real)
	if err != nil {
		return Root24{}, fmt.Errorf("reading root %s: %w", r.dir, err)
	}
	var s Root24
	exc, excErr := readExceptions(filepath.Join(r.real, filepath.FromSlash(RootExceptionsPath)))
	if excErr == nil {
		s.ExceptionsFile = RootExceptionsPath
	} else if errors.Is(excErr, fs.ErrNotExist) {
		s.Problems = append(s.Problems, "exceptions file "+RootExceptionsPath+" is missing")
	} else {
		return Root24{}, excErr
	}
	seen := map[string]int{}
	for _, e := range entries {
		name := e.Name()
		if m := moduleRe.FindStringSubmatch(name); m != nil && e.IsDir() {
			s.Modules = append(s.Modules, name)
			seen[m[1]]++
			n := m[1]
			if n < "01" || n > "24" {
				s.Unexpected = append(s.Unexpected, name)
			}
			continue
		}
		if exc[name] {
			continue
		}
		s.Unexpected = append(s.Unexpected, name)
	}
	for i := 1; i <= 24; i++ {
		n := fmt.Sprintf("%02d", i)
		switch seen[n] {
		case 0:
			s.Missing = append(s.Missing, n)
		case 1:
		default:
			s.Duplicates = append(s.Duplicates, n)
		}
	}
	if len(s.Missing) > 0 {
		s.Problems = append(s.Problems, "missing modules: "+strings.Join(s.Missing, ", "))
	}
	if len(s.Duplicates) > 0 {
		s.Problems = append(s.Problems, "more than one directory for: "+strings.Join(s.Duplicates, ", "))
	}
	if len(s.Unexpected) > 0 {
		s.Problems = append(s.Problems, "entries not allowed at the root: "+strings.Join(s.Unexpected, ", "))
	}
	return s, nil
}

// readExceptions reads the list of allowed root entries. The file is a YAML
// list or mapping; every "- name" item and every "name:" key counts, so the
// shapes the SSID repo has used all work without a YAML dependency.
func readExceptions(path string) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if i := strings.Index(line, " #"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var item string
		if strings.HasPrefix(line, "- ") {
			item = strings.TrimSpace(line[2:])
		} else if i := strings.Index(line, ":"); i > 0 {
			item = strings.TrimSpace(line[:i])
		}
		item = strings.Trim(item, `"'`)
		if item != "" {
			out[item] = true
		}
	}
	return out, nil
}
