//go:build linux

package tree

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRootOpenRaceNeverEscapes swaps an in-root directory with a symlink to
// a directory outside the root (renameat2 RENAME_EXCHANGE, in a tight loop)
// while files are opened through the root by every path shape the tool
// meets: plain, through a relative symlink, and through an absolute symlink
// that points inside the root (the shape that made the old Root.Open fall
// back to resolve-then-open). No byte from outside may ever be read.
func TestRootOpenRaceNeverEscapes(t *testing.T) {
	base := t.TempDir()
	rootDir := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(rootDir, "data"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rootDir, "data", "f.txt"), []byte("INSIDE"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "f.txt"), []byte("OUTSIDE-SECRET"), 0o644); err != nil {
		t.Fatal(err)
	}
	// evil is swapped with data; abs and rel are symlinks to data.
	if err := os.Symlink(outside, filepath.Join(rootDir, "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(rootDir, "data"), filepath.Join(rootDir, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("data", filepath.Join(rootDir, "rel")); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}

	dirfd, err := unix.Open(rootDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirfd)
	if err := unix.Renameat2(dirfd, "data", dirfd, "evil", unix.RENAME_EXCHANGE); err != nil {
		t.Fatalf("renameat2(RENAME_EXCHANGE) unsupported here: %v", err)
	}
	if err := unix.Renameat2(dirfd, "data", dirfd, "evil", unix.RENAME_EXCHANGE); err != nil {
		t.Fatal(err)
	}

	var stop atomic.Bool
	var swaps atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if err := unix.Renameat2(dirfd, "data", dirfd, "evil", unix.RENAME_EXCHANGE); err != nil {
				t.Errorf("swap: %v", err)
				return
			}
			swaps.Add(1)
		}
	}()

	var reads, inside, refused int
	var escaped []string
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		for _, rel := range []string{"abs/f.txt", "rel/f.txt", "data/f.txt"} {
			reads++
			f, err := r.Open(rel)
			if err != nil {
				refused++
				continue
			}
			b, err := io.ReadAll(f)
			f.Close()
			if err != nil {
				refused++
				continue
			}
			if strings.Contains(string(b), "OUTSIDE") {
				escaped = append(escaped, rel)
			} else {
				inside++
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d opens (%d read inside, %d refused) against %d directory swaps; %d read outside", reads, inside, refused, swaps.Load(), len(escaped))
	if swaps.Load() < 100 {
		t.Fatalf("only %d swaps happened; the race was not exercised", swaps.Load())
	}
	if inside == 0 {
		t.Fatal("no open succeeded at all; the test would pass without exercising reads")
	}
	if len(escaped) > 0 {
		t.Fatalf("read a file outside the root %d times (first through %q)", len(escaped), escaped[0])
	}
}
