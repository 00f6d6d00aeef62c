package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
)

// BenchmarkStatusPinnedCount: what counting "pinned" from the repo's pin
// set adds to status's count of the manifest, on a tree of
// SSID_BENCH_FILES small files (default 16000, the real tree's size)
// anchored in one run. Reports the medians of the manifest count alone
// (the records' flags, as before), of the pin-set count alone (the
// daemon's cached path: one pin listing and the run root's directory
// walk), and their ratio. Run with -benchtime=1x; rounds from
// SSID_BENCH_ROUNDS (default 5).
func BenchmarkStatusPinnedCount(b *testing.B) {
	files, rounds := benchEnv("SSID_BENCH_FILES", 16000), benchEnv("SSID_BENCH_ROUNDS", 5)
	dir := b.TempDir()
	root := benchDataTree(b, dir, files)
	cfg := filepath.Join(dir, "appliance.json")
	mustWrite(b, cfg, []byte(`{"anchor": {"rules": [{"match": ["*"], "globs": ["data/*"]}]}}`))
	repo := filepath.Join(dir, "repo")
	if code, _, stderr := runCLI(b, "--repo", repo, "init"); code != 0 {
		b.Fatal(stderr)
	}
	if code, _, stderr := runCLI(b, "--root", root, "--repo", repo, "--config", cfg, "anchor"); code != 0 {
		b.Fatal(stderr)
	}
	ctx := context.Background()
	n, err := node.Open(ctx, repo, node.OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	paths := tree.DefaultPaths()
	var manifest, pins []time.Duration
	for i := 0; i < b.N*rounds; i++ {
		t0 := time.Now()
		var cids []string
		s, _ := countAnchorsCIDs(root, paths, &cids)
		manifest = append(manifest, time.Since(t0))
		if s.Err != "" || s.Records < files {
			b.Fatalf("counted %+v, want %d records", s, files)
		}
		parsed := parseCIDs(cids)
		t0 = time.Now()
		s.countPinned(ctx, n, parsed)
		pins = append(pins, time.Since(t0))
		if s.PinnedErr != "" || s.Pinned != s.Records {
			b.Fatalf("pinned %d of %d (%s)", s.Pinned, s.Records, s.PinnedErr)
		}
	}
	b.Logf("manifest count: %v\npin-set count: %v", manifest, pins)
	mm, mp := median(manifest), median(pins)
	b.ReportMetric(float64(mm.Microseconds())/1000, "ms-manifest-count")
	b.ReportMetric(float64(mp.Microseconds())/1000, "ms-pinset-count")
	b.ReportMetric(float64(mp)/float64(mm), "pinset/manifest")
}
