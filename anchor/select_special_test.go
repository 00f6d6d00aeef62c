package anchor

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ssid/ssid-anchor/anchor/tree"
	"golang.org/x/sys/unix"
)

// TestSelectLiteralSpecialFile is issue 25.17: a FIFO (or socket) at a
// literal rule path was "matched no file", so the run passed with exit 0.
// It is selected, like one a glob finds, and the run refuses it by name;
// a directory at a literal path still matches no file.
func TestSelectLiteralSpecialFile(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a/regular.txt": "x"})
	if err := unix.Mkfifo(filepath.Join(dir, "a/pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "a/sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Mkdir(filepath.Join(dir, "a/dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := openRoot(t, dir)
	s, err := NewSelector(r, tree.DefaultPaths(), []Rule{{Match: []string{"*"}, Globs: []string{"a/regular.txt", "a/pipe", "a/sock", "a/dir"}}})
	if err != nil {
		t.Fatal(err)
	}
	got, none, err := s.Select(oneEvent(t, "e"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/regular.txt", "a/pipe", "a/sock"}; !slices.Equal(got, want) {
		t.Errorf("selected %v, want %v", got, want)
	}
	if len(none) != 1 || none[0].Glob != "a/dir" {
		t.Errorf("unmatched %+v, want only a/dir", none)
	}
	// The run refuses what was selected, naming its kind, without blocking
	// on the FIFO.
	for _, p := range []string{"a/pipe", "a/sock"} {
		if f, err := r.Open(p); err == nil {
			f.Close()
			t.Errorf("%s opened as a file", p)
		}
	}
}
