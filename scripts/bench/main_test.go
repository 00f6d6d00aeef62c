package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary be the launcher of measured commands, as
// the bench binary is (run re-executes os.Executable()).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == launcherArg {
		os.Exit(launcherMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// toolBinary returns the binary named by env (make test sets both), or builds
// pkg, as cmd/ssid-anchor's tests do; a failed build fails the test.
func toolBinary(t *testing.T, env, pkg string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	p := filepath.Join(t.TempDir(), filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", p, pkg).CombinedOutput(); err != nil {
		t.Fatalf("%s is not set and building %s failed: %v\n%s", env, pkg, err, out)
	}
	return p
}

// TestHarnessTiny runs every case of the harness at tiny sizes against the
// real ssid-anchor and stock kubo binaries, so `make bench` cannot rot
// unnoticed: every row and ratio must be printed and the JSON must hold
// one sample per command of every case.
func TestHarnessTiny(t *testing.T) {
	seed := uint64(time.Now().UnixNano()%(1<<31) + 1)
	if s := os.Getenv("SSID_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SSID_TEST_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("random seed %d (replay with SSID_TEST_SEED=%d)", seed, seed)
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	o := options{
		Bin:  toolBinary(t, "SSID_ANCHOR_BIN", "github.com/ssid/ssid-anchor/cmd/ssid-anchor"),
		IPFS: toolBinary(t, "SSID_IPFS_BIN", "github.com/ipfs/kubo/cmd/ipfs"),
		Size: 4 << 20, Small: 20, TreeFiles: 200, Depth: 8, Runs: 1, Only: "all,soak",
		Dir: t.TempDir(), Seed: seed, JSON: jsonPath, Idle: time.Second, Soak: 3 * time.Second, Scrape: time.Second,
	}
	var out, progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := run(ctx, o, &out, &progress); err != nil {
		t.Fatalf("run: %v\n%s\n%s", err, out.String(), progress.String())
	}
	text := out.String()
	t.Log("\n" + text)

	want := map[string][]string{
		"large":       {"ssid-anchor anchor", "stock ipfs add --offline -Q", "stock ipfs add --offline -Q + sync", "cp + sync", "openssl dgst -sha256 FILE"},
		"small":       {"ssid-anchor anchor", "stock ipfs add --offline -Q -r", "stock ipfs add --offline -Q -r + sync", "cp -r + sync", "find -exec openssl dgst -sha256 {} +"},
		"tree":        {"ssid-anchor anchor", "stock ipfs add --offline -Q -r", "stock ipfs add --offline -Q -r + sync", "cp -r + sync", "find -exec openssl dgst -sha256 {} +"},
		"verify":      {"ssid-anchor verify", "find -exec openssl dgst -sha256 {} +", "stock ipfs repo verify", "stock repo verify + openssl (sum)"},
		"export":      {"ssid-anchor export --car DIR", "stock ipfs dag export ROOT > FILE", "stock ipfs dag export ROOT > FILE + sync", "cp -r + sync"},
		"incremental": {"first full anchor (fresh repo)", "anchor, no new event", "anchor, new event, no file changed", "anchor, new event, one file changed"},
		"daemon":      {"ssid-anchor daemon (idle 1s)", "stock ipfs daemon --offline (idle 1s)"},
	}
	wantRatios := map[string]int{"large": 4, "small": 4, "tree": 5, "verify": 3, "export": 3, "incremental": 3, "daemon": 3}
	wantRSS := map[string]int{"large": 1, "verify": 1, "export": 1}

	// The printed tables: each case's section holds each of its rows.
	for _, name := range append(caseNames, extraCases...) {
		i := strings.Index(text, "\n== "+name+": ")
		if i < 0 {
			t.Errorf("no table for case %s", name)
			continue
		}
		sec := text[i+1:]
		if j := strings.Index(sec, "\n== "); j >= 0 {
			sec = sec[:j]
		}
		for _, label := range want[name] {
			if !strings.Contains(sec, "\n  "+label+" ") {
				t.Errorf("case %s: no row %q", name, label)
			}
		}
		if n := strings.Count(sec, " ×"); n < wantRatios[name] {
			t.Errorf("case %s: %d ratios printed, want %d", name, n, wantRatios[name])
		}
	}
	for _, s := range []string{"load average", "load average at the end", "kubo v0.43.1", "seed " + strconv.FormatUint(seed, 10),
		"target ≤ 1.30 ×", "target ≤ 1.00 ×", "target ≤ 0.70 ×", "target ≤ 2.50 ×", "target ≤ 0.15 ×", "target ≤ 2.00 ×", "target ≤ 0.80 ×",
		"target ≤ 128 MiB", "target ≤ 200 MB", "page cache", "RssAnon", "RssFile", "target: no growth"} {
		if !strings.Contains(text, s) {
			t.Errorf("output lacks %q", s)
		}
	}

	// The JSON: every case, every row with one real sample.
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("-json output does not parse: %v", err)
	}
	if rep.Seed != seed || rep.Runs != 1 || rep.NProc < 1 || rep.LoadStart == "" || rep.LoadEnd == "" || rep.Kernel == "" || rep.FSType == "unknown" {
		t.Errorf("environment in JSON: seed %d runs %d nproc %d load %q/%q kernel %q fs %q",
			rep.Seed, rep.Runs, rep.NProc, rep.LoadStart, rep.LoadEnd, rep.Kernel, rep.FSType)
	}
	var names []string
	for _, c := range rep.Cases {
		names = append(names, c.Name)
		switch c.Name {
		case "daemon":
			if len(c.Mem) != 2 || len(c.MemRatios) != 3 {
				t.Errorf("daemon: %d rows, %d ratios in JSON", len(c.Mem), len(c.MemRatios))
			}
			for _, r := range c.Mem {
				if len(r.Samples) != 1 || r.Samples[0].RSSKiB <= 0 || r.Samples[0].AnonKiB <= 0 || r.Samples[0].FileKiB <= 0 || r.Samples[0].MaxRSS <= 0 {
					t.Errorf("daemon %s: samples %+v", r.Key, r.Samples)
				}
			}
			continue
		case "soak":
			if s := c.Soak; s == nil || len(s.Samples) == 0 || s.Requests < 3 || s.Failures != 0 || s.Idle.RSSKiB <= 0 {
				t.Errorf("soak: %+v", c.Soak)
			}
			continue
		}
		if len(c.Rows) != len(want[c.Name]) {
			t.Errorf("case %s: %d rows in JSON, want %d", c.Name, len(c.Rows), len(want[c.Name]))
		}
		for i, r := range c.Rows {
			if i < len(want[c.Name]) && r.Label != want[c.Name][i] {
				t.Errorf("case %s row %d: %q, want %q", c.Name, i, r.Label, want[c.Name][i])
			}
			if len(r.Samples) != 1 || r.Samples[0].WallS <= 0 || r.Samples[0].RSSKiB <= 0 || r.MedianS != r.Samples[0].WallS {
				t.Errorf("case %s row %s: samples %+v median %v", c.Name, r.Key, r.Samples, r.MedianS)
			}
		}
		if n := len(c.Ratios) + len(c.RSSRatios); n != wantRatios[c.Name] {
			t.Errorf("case %s: %d ratios in JSON, want %d", c.Name, n, wantRatios[c.Name])
		}
		for _, r := range c.Ratios {
			if !(r.Value > 0) || math.IsInf(r.Value, 0) || len(r.PerRound) != 1 || r.PerRound[0] != r.Value {
				t.Errorf("case %s: ratio %s/%s = %v, per round %v", c.Name, r.Subject, r.Baseline, r.Value, r.PerRound)
			}
		}
		if len(c.RSS) != wantRSS[c.Name] {
			t.Errorf("case %s: %d RSS targets, want %d", c.Name, len(c.RSS), wantRSS[c.Name])
		}
	}
	if all := append(caseNames, extraCases...); strings.Join(names, ",") != strings.Join(all, ",") {
		t.Errorf("cases in JSON: %v, want %v", names, all)
	}
	if tr := rep.Cases[2]; tr.Files != 200 || tr.Bytes < 200<<10 {
		t.Errorf("tree case: %d files, %d bytes; want 200 files of at least 1 KiB", tr.Files, tr.Bytes)
	}
	if ents, _ := os.ReadDir(o.Dir); len(ents) != 0 {
		t.Errorf("the work dir was not removed: %v", ents)
	}
}

func TestGenTreeDepth(t *testing.T) {
	dir := t.TempDir()
	spec, err := genTree(filepath.Join(dir, "tree"), 300, 8, 7)
	if err != nil {
		t.Fatal(err)
	}
	files, deepest := 0, 0
	var bytes int64
	filepath.WalkDir(filepath.Join(dir, "tree"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsDir() {
			files++
			fi, _ := d.Info()
			bytes += fi.Size()
			rel, _ := filepath.Rel(filepath.Join(dir, "tree"), p)
			deepest = max(deepest, strings.Count(rel, string(filepath.Separator)))
		}
		return nil
	})
	if files != 300 || spec.files != 300 || bytes != spec.bytes || deepest != 8 || spec.depth != 8 {
		t.Errorf("tree: %d files (spec %d), %d bytes (spec %d), deepest level %d (spec %d); want 300 files 8 levels deep",
			files, spec.files, bytes, spec.bytes, deepest, spec.depth)
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{{"4MiB", 4 << 20}, {"1GiB", 1 << 30}, {"256m", 256 << 20}, {"512K", 512 << 10}, {"1048576", 1 << 20}, {"0.5GiB", 1 << 29}} {
		if got, err := parseSize(tc.in); err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "-1MiB", "lots", "0"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q): no error", bad)
		}
	}
	if got, err := parseOnly("verify,large"); err != nil || strings.Join(got, ",") != "large,verify" {
		t.Errorf("parseOnly(verify,large) = %v, %v", got, err)
	}
	if _, err := parseOnly("large,bogus"); err == nil || !strings.Contains(err.Error(), `"bogus"`) {
		t.Errorf("parseOnly(large,bogus): %v, want an error naming bogus", err)
	}
}

// TestHarnessFailsLoudly: a command that fails stops the run with an error
// naming it (make bench exits non-zero), and -json still records that.
func TestHarnessFailsLoudly(t *testing.T) {
	jsonPath := filepath.Join(t.TempDir(), "out", "bench.json")
	o := options{Bin: "/bin/false", IPFS: "/bin/true", Size: 1 << 20, Small: 2, TreeFiles: 2, Depth: 1, Runs: 1,
		Only: "small", Dir: t.TempDir(), Seed: 1, JSON: jsonPath}
	var out, progress bytes.Buffer
	err := run(context.Background(), o, &out, &progress)
	if err == nil || !strings.Contains(err.Error(), "case small") || !strings.Contains(err.Error(), "/bin/false") {
		t.Fatalf("run with /bin/false as ssid-anchor: %v, want an error naming the case and the command", err)
	}
	b, rerr := os.ReadFile(jsonPath)
	if rerr != nil {
		t.Fatal(rerr)
	}
	var rep report
	if jerr := json.Unmarshal(b, &rep); jerr != nil || rep.Error != err.Error() || len(rep.Cases) != 0 {
		t.Errorf("-json after a failure: error %q, %d cases (%v); want %q and none", rep.Error, len(rep.Cases), jerr, err)
	}
}
