package statcache

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var start = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// old is metadata well before start (not racy).
func old(size int64, ino uint64) Stat {
	t := start.Add(-time.Hour).UnixNano()
	return Stat{Size: size, MtimeNS: t, CtimeNS: t + 5, Ino: ino, Dev: 2049}
}

func hashOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestLookupNeedsEveryFieldEqual: any difference in size, mtime, ctime,
// inode or device is a miss, so the file is read.
func TestLookupNeedsEveryFieldEqual(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cache")
	b := (&Cache{}).Next("/tree", start)
	st := old(10, 7)
	b.Add("docs/a.md", st, hashOf("a"))
	if err := b.Write(file); err != nil {
		t.Fatal(err)
	}
	c, why := Load(file, "/tree")
	if why != "" || c.Len() != 1 {
		t.Fatalf("load: %d entries, %q", c.Len(), why)
	}
	if h, ok := c.Lookup("docs/a.md", st); !ok || h != hashOf("a") {
		t.Fatalf("lookup of the same metadata: %q %v", h, ok)
	}
	for name, change := range map[string]func(*Stat){
		"size":   func(s *Stat) { s.Size++ },
		"mtime":  func(s *Stat) { s.MtimeNS++ },
		"ctime":  func(s *Stat) { s.CtimeNS++ },
		"inode":  func(s *Stat) { s.Ino++ },
		"device": func(s *Stat) { s.Dev++ },
	} {
		s := st
		change(&s)
		if _, ok := c.Lookup("docs/a.md", s); ok {
			t.Errorf("a different %s still hits", name)
		}
	}
	if _, ok := c.Lookup("docs/b.md", st); ok {
		t.Error("another path hits")
	}
}

// TestRacyEntriesAreNotKept: a file changed within RacyWindow of the run's
// start could change again in the same timestamp tick unseen; its entry is
// not written, so the next run reads it.
func TestRacyEntriesAreNotKept(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cache")
	b := (&Cache{}).Next("/tree", start)
	recent := start.Add(-RacyWindow + time.Millisecond).UnixNano()
	b.Add("old.md", old(1, 1), hashOf("o"))
	b.Add("mtime.md", Stat{Size: 1, MtimeNS: recent, CtimeNS: old(1, 1).CtimeNS, Ino: 2}, hashOf("m"))
	b.Add("ctime.md", Stat{Size: 1, MtimeNS: old(1, 1).MtimeNS, CtimeNS: recent, Ino: 3}, hashOf("c"))
	b.Add("future.md", Stat{Size: 1, MtimeNS: start.Add(time.Hour).UnixNano(), CtimeNS: old(1, 1).CtimeNS, Ino: 4}, hashOf("f"))
	if err := b.Write(file); err != nil {
		t.Fatal(err)
	}
	c, _ := Load(file, "/tree")
	if c.Len() != 1 {
		t.Fatalf("%d entries kept, want only the one changed long before the run", c.Len())
	}
	if _, ok := c.Lookup("old.md", old(1, 1)); !ok {
		t.Error("the old entry is gone")
	}
}

// TestNextMergesOldAndNew: entries of files the run did not read stay;
// a re-read file's entry is replaced; a dropped one goes.
func TestNextMergesOldAndNew(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cache")
	b := (&Cache{}).Next("/tree", start)
	for _, p := range []string{"a", "b", "c", "d"} {
		b.Add(p, old(1, uint64(p[0])), hashOf(p))
	}
	if err := b.Write(file); err != nil {
		t.Fatal(err)
	}
	c, _ := Load(file, "/tree")
	b = c.Next("/tree", start.Add(time.Minute))
	b.Add("b", old(2, 99), hashOf("b2"))
	b.Drop("c")
	b.Add("e", old(1, 5), hashOf("e"))
	b.Add("e", old(3, 6), hashOf("e3")) // read twice: the last wins
	if err := b.Write(file); err != nil {
		t.Fatal(err)
	}
	c, _ = Load(file, "/tree")
	want := map[string]struct {
		st   Stat
		hash string
	}{"a": {old(1, 'a'), hashOf("a")}, "b": {old(2, 99), hashOf("b2")}, "d": {old(1, 'd'), hashOf("d")}, "e": {old(3, 6), hashOf("e3")}}
	if c.Len() != len(want) {
		t.Fatalf("%d entries, want %d", c.Len(), len(want))
	}
	for p, w := range want {
		if h, ok := c.Lookup(p, w.st); !ok || h != w.hash {
			t.Errorf("%s: %q %v", p, h, ok)
		}
	}
}

// TestDamagedCacheIsIgnored: a torn, flipped, foreign or missing cache
// loads as empty (every file is read once), with the reason.
func TestDamagedCacheIsIgnored(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cache")
	b := (&Cache{}).Next("/tree", start)
	for i := range 50 {
		b.Add(strings.Repeat("x", i+1), old(int64(i), uint64(i)), hashOf("x"))
	}
	if err := b.Write(file); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(file)
	if c, why := Load(file, "/other/tree"); c.Len() != 0 || !strings.Contains(why, "/other/tree") {
		t.Errorf("a cache of another tree: %d entries, %q", c.Len(), why)
	}
	for i := 0; i < len(good); i += 7 {
		for _, bad := range [][]byte{good[:i], flip(good, i)} {
			if err := os.WriteFile(file, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			if c, why := Load(file, "/tree"); c.Len() != 0 || why == "" {
				t.Fatalf("damaged at byte %d: %d entries loaded (%q)", i, c.Len(), why)
			}
		}
	}
	os.Remove(file)
	if c, why := Load(file, "/tree"); c.Len() != 0 || why == "" {
		t.Errorf("missing: %d entries, %q", c.Len(), why)
	}
	os.Mkdir(file, 0o755)
	if c, why := Load(file, "/tree"); c.Len() != 0 || why == "" {
		t.Errorf("a directory: %d entries, %q", c.Len(), why)
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x20
	return c
}

// TestWriteRemovesTempsOfKilledRuns: a run killed while writing leaves its
// temp file; the next write removes it and the cache is whole.
func TestWriteRemovesTempsOfKilledRuns(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cache")
	left := filepath.Join(dir, ".cache.tmp-123")
	if err := os.WriteFile(left, []byte("half a cache"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := (&Cache{}).Next("/tree", start)
	b.Add("a", old(1, 1), hashOf("a"))
	if err := b.Write(file); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("the killed run's temp file is still there: %v", err)
	}
	if c, why := Load(file, "/tree"); c.Len() != 1 {
		t.Errorf("cache after the write: %d entries (%q)", c.Len(), why)
	}
}
