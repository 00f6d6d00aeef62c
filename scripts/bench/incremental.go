package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
)

// caseIncremental measures runs over the anchored tree (issue 22, "like
// git's index and restic's parent snapshot"): each round runs, in an order
// rotated by the round,
//
//   - a first full anchor of the same files (hard links of the tree under
//     a second root, a fresh repo each round);
//   - a run with nothing new (no new registry event);
//   - a run for a new event whose rules select every file, none changed;
//   - the same with one file changed (new random bytes, same size).
//
// The runs over the anchored tree keep its repo, so its stat cache; an
// untimed run for a new event first brings the cache up to date with
// every file (the tree was written moments ago by the generator, and
// entries for files changed within 3 s of a run are not kept).
func (b *bench) caseIncremental(ctx context.Context) (*caseResult, error) {
	t, err := b.ensureAnchored(ctx)
	if err != nil {
		return nil, err
	}
	// The second root: the same file contents by hard link, its own log,
	// config, manifest and repo.
	fullDir := filepath.Join(t.dir, "incr-full")
	defer os.RemoveAll(fullDir)
	fullRoot := filepath.Join(fullDir, "root")
	if err := os.MkdirAll(fullRoot, 0o755); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, "cp", "-al", t.data, filepath.Join(fullRoot, "tree")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cp -al: %v: %s", err, out)
	}
	fullCfg, err := scaffold(fullDir, fullRoot, t.globs)
	if err != nil {
		return nil, err
	}
	g := []string{b.o.Bin, "--root", t.root, "--repo", t.repo, "--config", t.cfg}
	events := 0
	newEvent := func() error {
		events++
		_, err := runUntimed(ctx, nil, b.o.Bin, "--root", t.root, "event", "--event", "bench_incremental", "--version", fmt.Sprint("i", events), "--hash", "h")
		return err
	}
	if err := newEvent(); err != nil {
		return nil, err
	}
	fmt.Fprintf(b.progress, "incremental: one untimed run so the stat cache knows every file\n")
	if _, err := runUntimed(ctx, nil, append(g, "anchor")...); err != nil {
		return nil, err
	}
	manifest := filepath.Join(t.root, manifestPath)
	files, err := listFiles(t.data)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(b.o.Seed, 4))
	var want int
	countNow := func() error {
		n, err := countRecords(manifest)
		want = n
		return err
	}
	expect := func(add int) func() error {
		return func() error {
			n, err := countRecords(manifest)
			if err != nil {
				return err
			}
			if n != want+add {
				return fmt.Errorf("%s holds %d records, want %d (the run should add %d)", manifest, n, want+add, add)
			}
			return nil
		}
	}
	steps := []step{
		b.anchorStep(ctx, fullRoot, filepath.Join(fullDir, "repo"), fullCfg, t.spec.files),
		{key: "nothing-new", label: "anchor, no new event", subject: true, prep: countNow, argv: append(g[:len(g):len(g)], "anchor"), check: expect(0)},
		{key: "no-change", label: "anchor, new event, no file changed", subject: true,
			prep: func() error {
				if err := countNow(); err != nil {
					return err
				}
				return newEvent()
			},
			argv: append(g[:len(g):len(g)], "anchor"), check: expect(0)},
		{key: "one-changed", label: "anchor, new event, one file changed", subject: true,
			prep: func() error {
				if err := countNow(); err != nil {
					return err
				}
				f := files[rng.IntN(len(files))]
				if err := rewrite(f, rng); err != nil {
					return err
				}
				return newEvent()
			},
			argv: append(g[:len(g):len(g)], "anchor"), check: expect(1)},
	}
	steps[0].label = "first full anchor (fresh repo)"
	steps[0].key = "full"
	// Sources for every command: the tree and the manifest; and the
	// binary, which a box that anchors on every event has cached (a cold
	// 87 MB binary would be most of a run that has nothing to do).
	warm := []string{t.data, filepath.Dir(manifest), filepath.Join(t.root, filepath.Dir(filepath.Dir(manifestPath)), "logs"), b.o.Bin,
		filepath.Join(t.repo, "config"), filepath.Join(t.repo, "datastore"), filepath.Join(t.repo, "ssid-anchor-stat-cache")}
	rows, err := b.rounds(ctx, "incremental", steps, warm)
	if err != nil {
		return nil, err
	}
	cr := &caseResult{Name: "incremental", Title: fmt.Sprintf("runs over the anchored tree of %d files (%s), one event selecting them all", t.spec.files, human(t.spec.bytes)),
		Files: t.spec.files, Bytes: t.spec.bytes, Rows: rows}
	cr.ratios("one-changed", []string{"full", "nothing-new"}, map[string]float64{"full": 0.15, "nothing-new": 2.0})
	cr.ratios("no-change", []string{"full"}, nil)
	return cr, nil
}

// listFiles lists the regular files under dir.
func listFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return err
	})
	if len(out) == 0 && err == nil {
		err = fmt.Errorf("%s holds no file", dir)
	}
	return out, err
}

// rewrite gives a file new random bytes of the same size, in place.
func rewrite(path string, rng *rand.Rand) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	b := make([]byte, fi.Size())
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return os.WriteFile(path, b, fi.Mode())
}

// countRecords counts a manifest's records.
func countRecords(manifest string) (int, error) {
	b, err := os.ReadFile(manifest)
	if err != nil {
		return 0, err
	}
	var m struct {
		Anchors []json.RawMessage `json:"anchors"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, fmt.Errorf("%s: %w", manifest, err)
	}
	return len(m.Anchors), nil
}
