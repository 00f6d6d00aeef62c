package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/ssid/ssid-anchor/anchor/statcache"
)

// TestStatCacheSurvivesSIGKILL kills the real binary with SIGKILL while it
// writes its stat cache (stopped the moment the cache's temp file appears
// in the repo, so the kill lands before the rename) and checks nothing is
// lost: the run's manifest is already complete, signed and pinned; the
// next run anchors exactly the changed file, removes the leftover temp
// file and writes a whole cache again.
func TestStatCacheSurvivesSIGKILL(t *testing.T) {
	bin := anchorBinary(t)
	root := newTree(t)
	repo := initRepo(t)
	// Long paths make a cache of a few MB, so writing it takes long
	// enough to be caught between the temp file's creation and its rename.
	const files = 6000
	long := strings.Repeat("governance-module-directory-", 4)
	name := func(i int) string {
		return filepath.Join("data", fmt.Sprintf("%s%02d", long, i%20), fmt.Sprintf("%s%03d", long, i%300), fmt.Sprintf("f%05d.txt", i))
	}
	for i := range files {
		mustWrite(t, filepath.Join(root, name(i)), []byte(fmt.Sprintf("file %d\n", i)))
	}
	cfg := writeConfig(t, `{"anchor":{"rules":[{"match":["*"],"globs":["data/**/*.txt"]}]}}`)
	// Entries of files changed within RacyWindow of a run are not kept,
	// and a file's ctime cannot be set back: wait until the files are old
	// enough to be cached (setup, not a timed assertion).
	time.Sleep(statcache.RacyWindow + 200*time.Millisecond)
	event := func(v int) {
		if code, _, stderr := runCLI(t, "--root", root, "event", "--event", "change", "--version", fmt.Sprint("v", v), "--hash", "h"); code != 0 {
			t.Fatalf("event: %s", stderr)
		}
	}
	event(0)
	if code, _, stderr := runCLI(t, "--root", root, "--repo", repo, "--config", cfg, "anchor"); code != 0 {
		t.Fatalf("first anchor: exit %d: %s", code, stderr)
	}
	cacheFile := filepath.Join(repo, statcache.FileName)
	if st, err := os.Stat(cacheFile); err != nil || st.Size() < 1<<20 {
		t.Fatalf("cache after the first run: %v, %v; want over 1 MiB", st, err)
	}

	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(repo); err != nil {
		t.Fatal(err)
	}
	tempPrefix := "." + statcache.FileName + ".tmp-"
	caught := false
	for attempt := 1; attempt <= 15 && !caught; attempt++ {
		changed := name(attempt * 7)
		mustWrite(t, filepath.Join(root, changed), []byte(fmt.Sprintf("changed in attempt %d\n", attempt)))
		event(attempt)
		before, _ := os.ReadFile(cacheFile)
		cmd := exec.Command(bin, "--root", root, "--repo", repo, "--config", cfg, "anchor")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var temp string
		for temp == "" {
			select {
			case ev := <-w.Events:
				if ev.Op&fsnotify.Create != 0 && strings.HasPrefix(filepath.Base(ev.Name), tempPrefix) {
					cmd.Process.Signal(syscall.SIGSTOP)
					temp = ev.Name
				}
			case err := <-w.Errors:
				t.Fatal(err)
			case <-time.After(2 * time.Minute):
				cmd.Process.Kill()
				t.Fatalf("attempt %d: the run never wrote its cache", attempt)
			}
		}
		// Stopped: still inside the write when the temp file is there and
		// the cache in place is the old one.
		_, terr := os.Stat(temp)
		now, _ := os.ReadFile(cacheFile)
		inside := terr == nil && string(now) == string(before)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		for len(w.Events) > 0 {
			<-w.Events
		}
		// The run had committed before it wrote the cache: its record of
		// the changed file is in a valid manifest, and pinned.
		m := readManifest(t, root)
		last := m.Records[len(m.Records)-1]
		if last.FilePath != filepath.ToSlash(changed) {
			t.Fatalf("attempt %d: the killed run's record of %s is missing (last record %s)", attempt, changed, last.FilePath)
		}
		if !pinnedSet(t, repo)[last.IPFSCID] {
			t.Fatalf("attempt %d: %s is recorded but not pinned", attempt, last.IPFSCID)
		}
		t.Logf("attempt %d: killed %s the write", attempt, map[bool]string{true: "inside", false: "after"}[inside])
		caught = inside
	}
	if !caught {
		t.Fatal("no kill landed while the cache was being written")
	}

	// The next run loses nothing and repairs the cache.
	final := name(5)
	mustWrite(t, filepath.Join(root, final), []byte("changed after the kill\n"))
	event(100)
	code, stdout, stderr := runCLI(t, "--json", "--root", root, "--repo", repo, "--config", cfg, "anchor")
	if code != 0 {
		t.Fatalf("run after the kill: exit %d: %s", code, stderr)
	}
	var res struct {
		Anchored []struct {
			FilePath string `json:"file_path"`
		} `json:"anchored"`
		Unchanged []json.RawMessage `json:"unchanged"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Anchored) != 1 || res.Anchored[0].FilePath != filepath.ToSlash(final) || len(res.Unchanged) != files-1 {
		t.Fatalf("run after the kill anchored %+v with %d unchanged; want only %s", res.Anchored, len(res.Unchanged), final)
	}
	left, _ := filepath.Glob(filepath.Join(repo, tempPrefix+"*"))
	if len(left) != 0 {
		t.Errorf("temp files left in the repo: %v", left)
	}
	c, why := statcache.Load(cacheFile, root)
	if c.Len() < files-20 {
		t.Errorf("cache after the run: %d entries (%s), want about %d", c.Len(), why, files)
	}
}
