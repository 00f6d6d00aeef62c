package anchor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/bmatcuk/doublestar/v4"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
	"golang.org/x/sys/unix"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func openRoot(t *testing.T, dir string) tree.Root {
	t.Helper()
	r, err := tree.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func oneEvent(t *testing.T, name string) tree.Event {
	t.Helper()
	var ev tree.Event
	_, err := tree.ScanEvents(strings.NewReader(`{"event":"`+name+`","version":"v1"}`), func(e tree.Event) error { ev = e; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestSelectDoublestarDeepTree: `**` reaches any depth, every pattern of a
// run is answered from one walk, and directories no pattern can reach are
// never entered (an escaping symlink there would otherwise refuse the run).
func TestSelectDoublestarDeepTree(t *testing.T) {
	dir := t.TempDir()
	deep := "07_governance_legal"
	files := map[string]string{}
	for i := range 40 {
		deep += fmt.Sprintf("/d%02d", i)
		files[deep+"/policy.yaml"] = fmt.Sprint(i)
		files[deep+"/notes.md"] = "n"
	}
	files["07_governance_legal/top.yaml"] = "top"
	files["07_governance_legal/x.yml"] = "not yaml by name"
	files["05_documentation/reports/2026-Q1/COMPLIANCE_REPORT.md"] = "r"
	files["12_tooling/a/b/c.yaml"] = "other module"
	writeFiles(t, dir, files)
	// Unreachable by any pattern below: the walk must prune 12_tooling.
	if err := os.Symlink("/etc", filepath.Join(dir, "12_tooling", "a", "escape")); err != nil {
		t.Fatal(err)
	}
	r := openRoot(t, dir)
	rules := []Rule{
		{Match: []string{"*"}, Globs: []string{"07_governance_legal/**/*.yaml"}},
		{Match: []string{"*"}, Globs: []string{"05_documentation/reports/*/COMPLIANCE_REPORT.md", "07_governance_legal/**/nothing-*.txt"}},
	}
	s, err := NewSelector(r, tree.DefaultPaths(), rules)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // several events: still one walk
		got, none, err := s.Select(oneEvent(t, "governance_update"))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 42 || !slices.Contains(got, deep+"/policy.yaml") || !slices.Contains(got, "07_governance_legal/top.yaml") ||
			!slices.Contains(got, "05_documentation/reports/2026-Q1/COMPLIANCE_REPORT.md") || slices.Contains(got, "12_tooling/a/b/c.yaml") {
			t.Fatalf("selected %d files: %v", len(got), got)
		}
		if len(none) != 1 || none[0].Glob != "07_governance_legal/**/nothing-*.txt" || none[0].Rule != 1 || none[0].Event != "governance_update" {
			t.Fatalf("unmatched = %+v, want the nothing-*.txt glob of rule 1", none)
		}
	}
	if !s.walked || len(s.files) != 83 {
		t.Fatalf("walked=%v, %d files listed (want 83: 12_tooling pruned)", s.walked, len(s.files))
	}

	// A pattern that does reach the escaping symlink refuses the run.
	s2, err := NewSelector(r, tree.DefaultPaths(), []Rule{{Match: []string{"*"}, Globs: []string{"**/*.yaml"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s2.Select(oneEvent(t, "x")); !errors.Is(err, tree.ErrOutsideRoot) || !strings.Contains(err.Error(), "12_tooling/a/escape") {
		t.Fatalf("**/*.yaml over an escaping symlink: %v, want a refusal naming it", err)
	}
}

// TestSelectNeverOwnOutputs: the anchor manifest, the telemetry state and
// their temp files are never selected, even by **/*.json.
func TestSelectNeverOwnOutputs(t *testing.T) {
	dir := t.TempDir()
	p := tree.DefaultPaths()
	writeFiles(t, dir, map[string]string{
		p.Manifest:       "{}",
		p.TelemetryState: "{}",
		filepath.ToSlash(filepath.Join(filepath.Dir(p.Manifest), ".ipfs_anchor_manifest.json.tmp-abc")): "{}",
		"24_meta_orchestration/registry/manifests/dashboard_manifest.json":                              "{}",
		"07_governance_legal/telemetry_config.json":                                                     "{}",
	})
	r := openRoot(t, dir)
	for _, globs := range [][]string{{"**/*.json"}, {p.Manifest, p.TelemetryState}, {"24_meta_orchestration/**"}} {
		s, err := NewSelector(r, p, []Rule{{Match: []string{"*"}, Globs: globs}})
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := s.Select(oneEvent(t, "e"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range got {
			if f == p.Manifest || f == p.TelemetryState || strings.Contains(f, ".tmp-") {
				t.Errorf("globs %v selected the tool's own output %s", globs, f)
			}
		}
		if globs[0] == "**/*.json" && len(got) != 2 {
			t.Errorf("**/*.json selected %v, want the two other json files", got)
		}
	}
}

func TestSelectorConfigErrors(t *testing.T) {
	r := openRoot(t, t.TempDir())
	for _, tc := range []struct {
		name  string
		rules []Rule
		want  string
	}{
		{"unknown placeholder", []Rule{{Match: []string{"*"}, Globs: []string{"{nosuchvar}"}}}, "unknown placeholder {nosuchvar}"},
		{"placeholder inside a path", []Rule{{Match: []string{"*"}, Globs: []string{"{events_log}/x"}}}, "must be the whole glob"},
		{"invalid glob", []Rule{{Match: []string{"*"}, Globs: []string{"["}}}, "invalid pattern"},
		{"empty rules", []Rule{}, "anchor.rules: must list at least one rule"},
		{"climbs out", []Rule{{Match: []string{"*"}, Globs: []string{"../x/*"}}}, "climbs out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSelector(r, tree.DefaultPaths(), tc.rules)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrConfig with %q", err, tc.want)
			}
			c := DefaultConfig()
			c.Rules = tc.rules
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "anchor.rules") {
				t.Fatalf("Config.Validate = %v, want an error naming anchor.rules", err)
			}
		})
	}
	// {a,b} alternatives are doublestar syntax, not placeholders.
	c := DefaultConfig()
	c.Rules = []Rule{{Match: []string{"*"}, Globs: []string{"05_documentation/{reports,releases}/**"}}}
	if err := c.Validate(); err != nil {
		t.Fatalf("alternatives refused: %v", err)
	}
}

// TestRunRaceNeverAnchorsOutside runs (dry) anchoring again and again while
// a directory on the selected paths is swapped with a symlink to outside
// the root: no run may ever hash a byte from outside.
func TestRunRaceNeverAnchorsOutside(t *testing.T) {
	base := t.TempDir()
	rootDir := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	p := tree.DefaultPaths()
	writeFiles(t, rootDir, map[string]string{"data/f.txt": "INSIDE", p.EventsLog: `{"event":"governance_x","version":"v1"}` + "\n"})
	writeFiles(t, outside, map[string]string{"f.txt": "OUTSIDE-SECRET"})
	os.Symlink(outside, filepath.Join(rootDir, "evil"))
	os.Symlink("data", filepath.Join(rootDir, "rel"))
	os.Symlink(filepath.Join(rootDir, "data"), filepath.Join(rootDir, "abs"))
	sum := sha256.Sum256([]byte("OUTSIDE-SECRET"))
	outsideHash := hex.EncodeToString(sum[:])
	r := openRoot(t, rootDir)

	dirfd, err := unix.Open(rootDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirfd)
	var stop atomic.Bool
	var swaps atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if err := unix.Renameat2(dirfd, "data", dirfd, "evil", unix.RENAME_EXCHANGE); err != nil {
				t.Errorf("renameat2(RENAME_EXCHANGE): %v", err)
				return
			}
			swaps.Add(1)
		}
	}()
	// Runs alternate between plain and relative-symlink paths and a path
	// through an absolute symlink that points inside the root (which the
	// old code resolved in user space and then opened by name).
	cfgs := [2]Config{DefaultConfig(), DefaultConfig()}
	cfgs[0].Rules = []Rule{{Match: []string{"*"}, Globs: []string{"data/f.txt", "rel/f.txt", "data/*.txt"}}}
	cfgs[1].Rules = []Rule{{Match: []string{"*"}, Globs: []string{"abs/f.txt"}}}
	params, err := node.ParamsFor(node.CIDProfileDefault)
	if err != nil {
		t.Fatal(err)
	}
	runs, hashed, refused, escaped := 0, 0, 0, 0
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		runs++
		res, err := Run(context.Background(), RunOptions{Root: r, Paths: p, Config: cfgs[runs%2], Params: params})
		if err != nil {
			if refused == 0 {
				t.Logf("first refusal: %v", err)
			}
			refused++
			continue
		}
		for _, rec := range res.Records {
			if rec.FileHash == outsideHash {
				escaped++
			} else {
				hashed++
			}
		}
		refused += len(res.Failed)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d dry runs against %d swaps: %d files hashed from inside, %d refusals, %d from outside", runs, swaps.Load(), hashed, refused, escaped)
	if swaps.Load() < 100 || hashed == 0 {
		t.Fatalf("the race was not exercised (%d swaps, %d files hashed)", swaps.Load(), hashed)
	}
	if escaped > 0 {
		t.Fatalf("a run hashed a file outside the root %d times", escaped)
	}
}

// BenchmarkSelectVsWalk compares selecting with ten patterns (three with
// **) against one bare confined walk of the same tree: selection should
// cost about one walk. Run both: go test ./anchor -run '^$' -bench SelectVsWalk
func BenchmarkSelectVsWalk(b *testing.B) {
	dir := b.TempDir()
	n := 0
	for m := 1; m <= 24; m++ {
		for d := range 20 {
			sub := filepath.Join(dir, fmt.Sprintf("%02d_mod", m), fmt.Sprintf("d%02d", d), "deeper", "still")
			if err := os.MkdirAll(sub, 0o755); err != nil {
				b.Fatal(err)
			}
			for f := range 34 {
				ext := []string{".yaml", ".md", ".json", ".py"}[f%4]
				os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%02d%s", f, ext)), nil, 0o644)
				n++
			}
		}
	}
	r, err := tree.OpenRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	rules := []Rule{{Match: []string{"*"}, Globs: []string{
		"07_mod/**/*.yaml", "**/*.json", "05_mod/d0*/deeper/still/*.md", "{events_log}", "{release_bundles}",
		"{release_manifests}", "{compliance_reports}", "{dashboard_markdown}", "{dashboard_csv}", "24_mod/**",
	}}}
	ev := tree.Event{}
	b.Logf("%d files", n)
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			count := 0
			fs.WalkDir(r.FS(), ".", func(string, fs.DirEntry, error) error { count++; return nil })
		}
	})
	b.Run("select", func(b *testing.B) {
		for b.Loop() {
			s, err := NewSelector(r, tree.DefaultPaths(), rules)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := s.Select(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestLiteralEndsNeverHideAMatch: the prefix and suffix check before
// doublestar rejects no path doublestar matches, for patterns with every
// kind of special character against paths around them.
func TestLiteralEndsNeverHideAMatch(t *testing.T) {
	pats := []string{"tree/**/*.md", "**/*.md", "**/b.md", "a/**", "a/**/b", "**", "*", "a/*", "a/**/", "**/",
		"a/{b,c}/*.md", "a/[bc]/x?.md", `a/\*b`, "a/b/**/c/**/*.yaml", "{a,b}/**", "a/**/*.{md,json}", "a/*/", "x.md"}
	paths := []string{"a", "a/b", "a/b/c", "b.md", "a/b.md", "a/b/b.md", "a/c/x1.md", "a/*b", "a/b/c/d.yaml", "a/b/x/c/y/z.yaml",
		"tree/x.md", "tree/a/b/c.md", "tree.md", "x.md", "a/x.json", "b", "b/x", "a/", ".md", "a/b/c/"}
	for _, p := range pats {
		pre, suf := literalEnds(p)
		for _, f := range paths {
			if doublestar.MatchUnvalidated(p, f) && !(len(f) >= len(pre)+len(suf) && strings.HasPrefix(f, pre) && strings.HasSuffix(f, suf)) {
				t.Errorf("pattern %q matches %q, but the check (prefix %q, suffix %q) refuses it", p, f, pre, suf)
			}
		}
	}
}
