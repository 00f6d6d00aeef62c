package anchor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/statcache"
)

// readLog records every file a run reads ("adding file" is logged before
// each read, the hash-only check of a known file included).
type readLog struct {
	mu    sync.Mutex
	files map[string]int
}

func (l *readLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *readLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *readLog) WithGroup(string) slog.Handler            { return l }
func (l *readLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "adding file" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "file" {
			l.mu.Lock()
			l.files[a.Value.String()]++
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func (l *readLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for f := range l.files {
		out = append(out, f)
	}
	sort.Strings(out)
	l.files = map[string]int{}
	return out
}

// cacheTree is a runTree anchored with a stat cache in the repo, whose
// runs log the files they read.
type cacheTree struct {
	*runTree
	cache string
	reads *readLog
	// now is the runs' clock: an hour ahead, so the files written by the
	// test are not racily clean (statcache.RacyWindow) and get entries.
	now time.Time
}

func newCacheTree(t *testing.T, files map[string]string) *cacheTree {
	rt := newRunTree(t, files)
	return &cacheTree{runTree: rt, cache: filepath.Join(rt.n.RepoPath(), statcache.FileName),
		reads: &readLog{files: map[string]int{}}, now: time.Now().Add(time.Hour).UTC()}
}

// run appends an event and anchors; it returns the result and the files
// the run read.
func (c *cacheTree) run() (*Result, []string) {
	c.t.Helper()
	res, err := c.runTree.run(func(o *RunOptions) {
		o.StatCache, o.Log = c.cache, slog.New(c.reads)
		o.Now = func() time.Time { return c.now }
	})
	if err != nil {
		c.t.Fatalf("run %d: %v", c.events, err)
	}
	return res, c.reads.take()
}

func recordedPaths(res *Result) []string {
	var out []string
	for _, r := range res.Records {
		out = append(out, r.FilePath)
	}
	sort.Strings(out)
	return out
}

// TestStatCacheReadsOnlyChangedFiles: after a full run, a run for a new
// event that selects the same files reads none of them; one with a changed
// file reads that file alone and records it.
func TestStatCacheReadsOnlyChangedFiles(t *testing.T) {
	c := newCacheTree(t, map[string]string{"docs/a.md": "a", "docs/b/b.md": "bb", "docs/b/c.md": "ccc", "docs/d.md": "dddd"})
	res, read := c.run()
	if len(res.Records) != 4 || len(read) != 4 {
		t.Fatalf("first run: %d records, read %v", len(res.Records), read)
	}
	res, read = c.run()
	if len(res.Records) != 0 || len(read) != 0 || len(res.Skipped) != 4 {
		t.Fatalf("nothing changed: records %v, read %v, %d unchanged; want none read", recordedPaths(res), read, len(res.Skipped))
	}
	writeFiles(t, c.rootDir, map[string]string{"docs/b/c.md": "changed"})
	res, read = c.run()
	if got := recordedPaths(res); len(got) != 1 || got[0] != "docs/b/c.md" || len(read) != 1 || read[0] != "docs/b/c.md" {
		t.Fatalf("one changed: recorded %v, read %v; want docs/b/c.md alone", got, read)
	}
}

// TestStatCacheNeverHidesAChange: new bytes of the same size with the
// modification time set back (touch -d) change the ctime; a file replaced
// by rename with the same size and time has a new inode: both are read and
// recorded. A change no metadata shows (forged here into the cache) is
// skipped by anchoring, as designed, and verify, which reads every file,
// reports it.
func TestStatCacheNeverHidesAChange(t *testing.T) {
	c := newCacheTree(t, map[string]string{"docs/a.md": "aaaa", "docs/b.md": "bbbb", "docs/c.md": "cccc", "docs/d.md": "dddd"})
	c.run()
	a := filepath.Join(c.rootDir, "docs/a.md")
	st, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	// Same size, bytes changed, mtime put back: only the ctime differs.
	if err := os.WriteFile(a, []byte("AAAA"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(a, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	// Replaced by rename, same size, mtime put back: a new inode.
	b := filepath.Join(c.rootDir, "docs/b.md")
	bst, _ := os.Stat(b)
	tmp := filepath.Join(c.rootDir, "docs/.b.tmp")
	os.WriteFile(tmp, []byte("BBBB"), 0o644)
	os.Chtimes(tmp, bst.ModTime(), bst.ModTime())
	if err := os.Rename(tmp, b); err != nil {
		t.Fatal(err)
	}
	nst, _ := os.Stat(b)
	if nst.Size() != bst.Size() || !nst.ModTime().Equal(bst.ModTime()) {
		t.Fatalf("setup: b.md size/mtime not kept")
	}
	res, read := c.run()
	if got := recordedPaths(res); strings.Join(got, ",") != "docs/a.md,docs/b.md" {
		t.Fatalf("same size and mtime: recorded %v (read %v); want docs/a.md (new ctime) and docs/b.md (new inode)", got, read)
	}

	// A change the metadata cannot show: new bytes, and the cache told the
	// file's new metadata with its old hash (as a file system with coarse
	// timestamps could leave it).
	cpath := filepath.Join(c.rootDir, "docs/c.md")
	if err := os.WriteFile(cpath, []byte("CCCC"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(cpath)
	if err != nil {
		t.Fatal(err)
	}
	cst, _ := statcache.Of(fi)
	cache, _ := statcache.Load(c.cache, c.root.Dir())
	forged := cache.Next(c.root.Dir(), time.Now().Add(time.Hour))
	forged.Add("docs/c.md", cst, sha256Hex("cccc"))
	if err := forged.Write(c.cache); err != nil {
		t.Fatal(err)
	}
	res, read = c.run()
	if len(res.Records) != 0 || len(read) != 0 {
		t.Fatalf("forged cache: recorded %v, read %v; want the forged entry trusted by anchoring", recordedPaths(res), read)
	}
	rep, err := Verify(context.Background(), VerifyOptions{Root: c.root, ManifestPath: filepath.Join(c.rootDir, c.paths.Manifest), Store: c.n, StoreName: "the repo", Pins: c.n})
	if err != nil {
		t.Fatal(err)
	}
	caught := false
	for _, r := range rep.Records {
		if r.FilePath == "docs/c.md" && !r.OK {
			for _, ch := range r.Failed() {
				caught = caught || ch.Name == "file"
			}
		}
	}
	if rep.OK || !caught {
		t.Fatalf("verify did not report the changed docs/c.md: ok %v, %+v", rep.OK, rep.Records)
	}
}

// TestStatCacheDeletedOnlyCostsTime: without its cache file a run reads
// every file again and records exactly what it would have recorded; the
// cache is written again.
func TestStatCacheDeletedOnlyCostsTime(t *testing.T) {
	c := newCacheTree(t, map[string]string{"docs/a.md": "a", "docs/b.md": "b", "docs/c.md": "c"})
	c.run()
	writeFiles(t, c.rootDir, map[string]string{"docs/b.md": "b2"})
	if err := os.Remove(c.cache); err != nil {
		t.Fatal(err)
	}
	res, read := c.run()
	if got := recordedPaths(res); len(got) != 1 || got[0] != "docs/b.md" || len(read) != 3 {
		t.Fatalf("without the cache: recorded %v, read %v; want docs/b.md recorded and all 3 read", got, read)
	}
	m, _, err := LoadManifest(filepath.Join(c.rootDir, c.paths.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Records) != 4 {
		t.Fatalf("%d records, want 4 (3 + the changed one)", len(m.Records))
	}
	if _, read = c.run(); len(read) != 0 {
		t.Fatalf("the cache was not written again: the next run read %v", read)
	}
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
