package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssid/ssid-anchor/anchor/tree"
)

// TestTwoReposOneTreeSayManifestLocked: while one run (of another repo)
// holds the tree's manifest, an anchoring run with its own, free repo is
// refused with exit 3 saying the manifest is locked, not the ipfs repo.
func TestTwoReposOneTreeSayManifestLocked(t *testing.T) {
	root := newTree(t)
	repoB := initRepo(t)
	unlock, err := tree.LockDir(filepath.Dir(filepath.Join(root, tManifest)))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	code, _, errb := runCLI(t, "--root", root, "--repo", repoB, "anchor")
	if code != exitRepo || !strings.Contains(errb, "anchor manifest is locked") || strings.Contains(errb, "ipfs repo is locked") ||
		!strings.Contains(errb, "another anchoring run holds this governance tree's manifest") {
		t.Fatalf("exit %d, want 3 naming the manifest lock and a fitting hint:\n%s", code, errb)
	}
}

// TestNumbersOutOfRangeSaySo: numbers too large for their key or column
// are reported as out of range, not as "not a number".
func TestNumbersOutOfRangeSaySo(t *testing.T) {
	root := telemetryTree(t, "100", func(cfg map[string]any) { cfg["check_interval_seconds"] = 1e300 })
	if code, out, errb := tel(t, root, "--check-config"); code != exitUsage || !strings.Contains(errb, "check_interval_seconds: 1e+300 is out of range") {
		t.Errorf("huge interval: exit %d\n%s%s", code, out, errb)
	}
	root = telemetryTree(t, "100", func(cfg map[string]any) { cfg["check_interval_seconds"] = 1.5 })
	if code, out, errb := tel(t, root, "--check-config"); code != exitUsage || !strings.Contains(errb, "check_interval_seconds: must be a whole number, got 1.5") {
		t.Errorf("fractional interval: exit %d\n%s%s", code, out, errb)
	}
	for cell, want := range map[string]string{
		"1e999,0":                 `column "compliance_score": 1e999 is out of range (0..100)`,
		"101,0":                   `column "compliance_score": 101 is out of range (0..100)`,
		"90,99999999999999999999": `column "violations": 99999999999999999999 is out of range`,
	} {
		root := telemetryTree(t, "100", nil)
		writeFile(t, filepath.Join(root, tDashboardCSV), []byte("quarter,date,compliance_score,violations\n2026-Q1,2026-01-31,"+cell+"\n"))
		if code, out, errb := tel(t, root); code != exitFailure || !strings.Contains(errb, want) {
			t.Errorf("row %s: exit %d, want 1 saying %q\n%s%s", cell, code, want, out, errb)
		}
	}
}
