package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/pinning"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
)

// BenchmarkAnchorRemoteQueue: what queueing a remote pin request for every
// new anchor adds to an anchoring run (target ≤ 5 %). Each round anchors two
// fresh copies of the same tree of SSID_BENCH_FILES small files (default
// 1000), one plainly and one with --remote, in alternating order; the
// medians and their ratio are reported. Run with -benchtime=1x; rounds from
// SSID_BENCH_ROUNDS (default 5).
func BenchmarkAnchorRemoteQueue(b *testing.B) {
	files, rounds := benchEnv("SSID_BENCH_FILES", 1000), benchEnv("SSID_BENCH_ROUNDS", 5)
	tmpl := b.TempDir()
	benchDataTree(b, tmpl, files)
	cfg := filepath.Join(tmpl, "appliance.json")
	mustWrite(b, cfg, []byte(`{"anchor": {"rules": [{"match": ["*"], "globs": ["data/*"]}]},
 "remote_pinning": {"services": [{"name": "cluster", "endpoint": "http://127.0.0.1:9/", "token_env": "UNUSED_TOKEN"}]}}`))
	if code, _, stderr := runCLI(b, "--repo", filepath.Join(tmpl, "repo"), "init"); code != 0 {
		b.Fatal(stderr)
	}
	var base, with []time.Duration
	for i := 0; i < b.N*rounds; i++ {
		for _, remote := range []bool{i%2 == 0, i%2 != 0} {
			dir := filepath.Join(b.TempDir(), "copy")
			if out, err := exec.Command("cp", "-a", tmpl, dir).CombinedOutput(); err != nil {
				b.Fatalf("%v %s", err, out)
			}
			// The copy's writeback must not land in the timed run.
			exec.Command("sync").Run()
			args := []string{"--root", filepath.Join(dir, "root"), "--repo", filepath.Join(dir, "repo"), "--config", filepath.Join(dir, "appliance.json"), "anchor"}
			if remote {
				args = append(args, "--remote", "cluster")
			}
			t0 := time.Now()
			code, _, stderr := runCLI(b, args...)
			d := time.Since(t0)
			if code != 0 {
				b.Fatalf("anchor: %s", stderr)
			}
			if remote {
				with = append(with, d)
				if n := len(queueOfTB(b, filepath.Join(dir, "repo"))); n != files {
					b.Fatalf("%d requests queued, want %d", n, files)
				}
			} else {
				base = append(base, d)
			}
		}
	}
	b.Logf("anchor: %v\nanchor --remote: %v", base, with)
	// The queue step alone, timed directly: under a loaded machine the
	// side-by-side difference is mostly noise; this is what --remote adds.
	var step []time.Duration
	for range rounds {
		g := &globalOptions{Repo: filepath.Join(b.TempDir(), "repo"), now: func() time.Time { return time.Now().UTC() }}
		recs := make([]anchor.Record, files)
		for i := range recs {
			recs[i] = anchor.Record{FilePath: fmt.Sprintf("data/f%05d.txt", i), FileHash: fmt.Sprintf("%064x", i), IPFSCID: benchCID(b, i)}
		}
		t0 := time.Now()
		if _, err := ops.QueueRemotePins(g.opsEnv(), []pinning.Service{{Name: "cluster"}}, recs); err != nil {
			b.Fatal(err)
		}
		step = append(step, time.Since(t0))
	}
	b.ReportMetric(float64(median(step).Microseconds())/1000, "ms-queue-step")
	b.ReportMetric(100*float64(median(step))/float64(median(base)), "%-queue-step")
	mb, mw := median(base), median(with)
	b.ReportMetric(float64(mb.Milliseconds()), "ms-anchor")
	b.ReportMetric(float64(mw.Milliseconds()), "ms-anchor+queue")
	b.ReportMetric(100*(float64(mw)/float64(mb)-1), "%-overhead")
}

func benchCID(b *testing.B, i int) string {
	c, err := cid.V0Builder{}.Sum(fmt.Appendf(nil, "%d", i))
	if err != nil {
		b.Fatal(err)
	}
	return c.String()
}

func benchEnv(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchDataTree writes the benchmarks' tree under dir/root: the Root-24
// modules, the real registry events log, and files small files under
// data/ (anchored with the rule globs ["data/*"]).
func benchDataTree(b *testing.B, dir string, files int) string {
	b.Helper()
	root := filepath.Join(dir, "root")
	for _, m := range modules {
		mustMkdir(b, filepath.Join(root, m))
	}
	log, err := os.ReadFile("testdata/registry_events.log")
	if err != nil {
		b.Fatal(err)
	}
	mustWrite(b, filepath.Join(root, tLog), log)
	for i := range files {
		mustWrite(b, filepath.Join(root, "data", fmt.Sprintf("f%05d.txt", i)), fmt.Appendf(nil, "governance artifact %d\n", i))
	}
	return root
}
