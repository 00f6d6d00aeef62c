package tree

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestOpenBeneath checks the one-syscall open that Root.Open uses on Linux
// resolves in-root paths and symlinks itself (ok) and refuses every escape
// with ErrOutsideRoot, as os.Root does.
func TestOpenBeneath(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	deep := filepath.Join(root, "a", "b", "c", "d", "e", "f", "g")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(deep, "x.yaml"), []byte("deep"), 0o644)
	os.WriteFile(filepath.Join(base, "secret"), []byte("s"), 0o644)
	os.Symlink("g/x.yaml", filepath.Join(root, "a", "b", "c", "d", "e", "f", "rel"))
	os.Symlink("../../../../../../../../secret", filepath.Join(deep, "up"))
	os.Symlink(filepath.Join(base, "secret"), filepath.Join(root, "abs"))
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, rel := range []string{"a/b/c/d/e/f/g/x.yaml", "a/b/c/d/e/f/rel", "a/b/../b/c/d/e/f/g/x.yaml"} {
		f, ok, err := r.openBeneath(filepath.FromSlash(rel), os.O_RDONLY)
		if !ok {
			t.Fatalf("openBeneath(%q): openat2 not used (kernel without openat2?): %v", rel, err)
		}
		if err != nil {
			t.Fatalf("openBeneath(%q): %v", rel, err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if string(b) != "deep" {
			t.Errorf("openBeneath(%q) read %q", rel, b)
		}
	}
	for _, rel := range []string{"a/b/c/d/e/f/g/up", "abs", "../secret", "a/../../secret"} {
		f, ok, err := r.openBeneath(filepath.FromSlash(rel), os.O_RDONLY)
		closeIf(f)
		if !ok || !errors.Is(err, ErrOutsideRoot) {
			t.Errorf("openBeneath(%q) = ok %v, %v; want ErrOutsideRoot", rel, ok, err)
		}
	}
	if st, err := r.Stat("a/b/c/d/e/f/rel"); err != nil || st.Size() != 4 || !st.Mode().IsRegular() {
		t.Errorf("Stat through an in-root symlink = %v, %v; want the 4-byte file", st, err)
	}
	for _, rel := range []string{"a/b/c/d/e/f/g/up", "abs"} {
		if _, err := r.Stat(rel); !errors.Is(err, ErrOutsideRoot) {
			t.Errorf("Stat(%q) = %v, want ErrOutsideRoot", rel, err)
		}
	}
	if _, err := r.Stat("a/b/nope.yaml"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat of a missing file = %v, want fs.ErrNotExist", err)
	}
	if _, err := r.Open("a/b/nope.yaml"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing file = %v, want fs.ErrNotExist", err)
	}
}

// TestStatBeneathMatchesOsStat: the raw-descriptor Stat gives what os.Stat
// gives for every kind of file, with the same *syscall.Stat_t.
func TestStatBeneathMatchesOsStat(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), []byte("12345"), 0o640)
	os.Chmod(filepath.Join(root, "f"), 0o640|os.ModeSetuid|os.ModeSetgid)
	os.Mkdir(filepath.Join(root, "d"), 0o750)
	os.Chmod(filepath.Join(root, "d"), 0o750|os.ModeSticky)
	if err := syscall.Mkfifo(filepath.Join(root, "p"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Symlink("f", filepath.Join(root, "l"))
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, name := range []string{"f", "d", "p", "l", "."} {
		got, ok, err := r.statBeneath(name)
		if !ok || err != nil {
			t.Fatalf("statBeneath(%q): ok %v, %v", name, ok, err)
		}
		want, err := os.Stat(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if got.Name() != want.Name() || got.Size() != want.Size() || got.Mode() != want.Mode() ||
			!got.ModTime().Equal(want.ModTime()) || got.IsDir() != want.IsDir() ||
			*got.Sys().(*syscall.Stat_t) != *want.Sys().(*syscall.Stat_t) {
			t.Errorf("%s: statBeneath %v %d %v %v, os.Stat %v %d %v %v", name, got.Name(), got.Size(), got.Mode(), got.ModTime(),
				want.Name(), want.Size(), want.Mode(), want.ModTime())
		}
	}
}

// TestDirStatIsRootStat: a directory opened once stats its entries as
// Root.Stat does (symlinks followed inside the root only, escapes refused),
// and a directory that leads outside cannot be opened.
func TestDirStatIsRootStat(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	os.MkdirAll(filepath.Join(root, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(root, "a", "b", "f"), []byte("12345"), 0o644)
	os.WriteFile(filepath.Join(root, "top"), []byte("1"), 0o644)
	os.WriteFile(filepath.Join(base, "secret"), []byte("s"), 0o644)
	os.Symlink("f", filepath.Join(root, "a", "b", "in"))
	os.Symlink("../../../secret", filepath.Join(root, "a", "b", "out"))
	os.Symlink(base, filepath.Join(root, "a", "outdir"))
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d, ok, err := r.OpenDir("a/b")
	if !ok || err != nil {
		t.Fatalf("OpenDir(a/b): ok %v, %v", ok, err)
	}
	defer d.Close()
	for _, name := range []string{"f", "in"} {
		got, err := d.Stat(name)
		want, werr := r.Stat("a/b/" + name)
		if err != nil || werr != nil {
			t.Fatalf("%s: Dir.Stat %v, Root.Stat %v", name, err, werr)
		}
		if got.Size() != want.Size() || got.Mode() != want.Mode() || !got.ModTime().Equal(want.ModTime()) {
			t.Errorf("%s: Dir.Stat %d %v %v, Root.Stat %d %v %v", name, got.Size(), got.Mode(), got.ModTime(), want.Size(), want.Mode(), want.ModTime())
		}
	}
	if _, err := d.Stat("out"); !errors.Is(err, ErrOutsideRoot) {
		t.Errorf("Stat of a symlink leading outside: %v, want ErrOutsideRoot", err)
	}
	if _, err := d.Stat("none"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat of a missing entry: %v, want fs.ErrNotExist", err)
	}
	for _, bad := range []string{"../b/f", "x/f", "", "..", "."} {
		if _, err := d.Stat(bad); err == nil {
			t.Errorf("Stat(%q): no error", bad)
		}
	}
	top, ok, err := r.OpenDir(".")
	if !ok || err != nil {
		t.Fatalf("OpenDir(.): ok %v, %v", ok, err)
	}
	if fi, err := top.Stat("top"); err != nil || fi.Size() != 1 {
		t.Errorf("Stat(top) in the root: %v, %v", fi, err)
	}
	top.Close()
	if _, _, err := r.OpenDir("a/outdir"); !errors.Is(err, ErrOutsideRoot) {
		t.Errorf("OpenDir through a symlink leading outside: %v, want ErrOutsideRoot", err)
	}
}
