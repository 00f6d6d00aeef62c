package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
)

// Streams of the seed, so each case's data depends only on -seed and its
// own flags, not on which other cases run.
const (
	streamLarge = iota + 1
	streamSmall
	streamTree
)

func chacha(seed uint64, stream byte) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	s[8] = stream
	return rand.NewChaCha8(s)
}

// writeRandom writes n bytes of src to path and fsyncs it.
func writeRandom(path string, n int64, src io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := io.CopyN(w, src, n); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// scaffold makes the governance tree around the data: a registry events
// log with one event (the rules match every event), and an appliance config
// whose one rule selects globs. It returns the config's path.
func scaffold(dir, root string, globs []string) (string, error) {
	logDir := filepath.Join(root, "24_meta_orchestration/registry/logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(logDir, "registry_events.log"),
		[]byte("Registry events initialized.\n{\"timestamp\":\"2026-01-01T09:00:00Z\",\"event\":\"bench_anchor\",\"version\":\"bench\"}\n"), 0o644); err != nil {
		return "", err
	}
	cfg := map[string]any{"anchor": map[string]any{"rules": []map[string]any{{"match": []string{"*"}, "globs": globs}}}}
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "appliance.json")
	return p, os.WriteFile(p, b, 0o644)
}

// treeSpec is the generated tree: what the tree case and its verify and
// export share.
type treeSpec struct {
	files int
	bytes int64
	dirs  int
	depth int // deepest level that holds a file
	exts  []string
}

// Extensions of the tree's files, by weight: text of every kind, mostly
// small; pdf and zip for the few large files.
var (
	smallExts = []struct {
		ext string
		w   int
	}{{"md", 30}, {"yaml", 25}, {"json", 20}, {"py", 10}, {"csv", 8}, {"txt", 7}}
	largeExts = []string{"pdf", "zip"}
)

// genTree writes n files under dir (dir itself is level 0) in directories
// up to depth levels below it. Directories form a random recursive tree: a
// chain reaches the full depth, every other directory hangs under a random
// earlier one, about 8 files per directory. 99.5 % of files are log-uniform
// in 1-64 KiB, the rest log-uniform in 64 KiB-4 MiB; contents are random
// (incompressible, no duplicate blocks).
func genTree(dir string, n, depth int, seed uint64) (treeSpec, error) {
	rng := rand.New(rand.NewPCG(seed, streamTree))
	content := chacha(seed, streamTree)
	type d struct {
		path  string
		level int
	}
	dirs := []d{{dir, 0}}
	for l := 1; l <= depth; l++ { // the chain to the full depth
		dirs = append(dirs, d{filepath.Join(dirs[l-1].path, fmt.Sprintf("l%d_%04d", l, l)), l})
	}
	for len(dirs) < max(depth+1, n/8) {
		p := dirs[rng.IntN(len(dirs))]
		if p.level >= depth {
			continue
		}
		dirs = append(dirs, d{filepath.Join(p.path, fmt.Sprintf("l%d_%04d", p.level+1, len(dirs))), p.level + 1})
	}
	for _, x := range dirs {
		if err := os.MkdirAll(x.path, 0o755); err != nil {
			return treeSpec{}, err
		}
	}
	spec := treeSpec{files: n, dirs: len(dirs)}
	totalW := 0
	for _, e := range smallExts {
		totalW += e.w
	}
	logUniform := func(lo, hi float64) int64 {
		return int64(math.Exp(math.Log(lo) + rng.Float64()*(math.Log(hi)-math.Log(lo))))
	}
	for i := range n {
		x := dirs[rng.IntN(len(dirs))]
		if i == 0 {
			x = dirs[depth] // the deepest directory holds a file
		}
		var ext string
		var size int64
		if rng.Float64() < 0.005 {
			ext, size = largeExts[rng.IntN(len(largeExts))], logUniform(64<<10, 4<<20)
		} else {
			r := rng.IntN(totalW)
			for _, e := range smallExts {
				if r < e.w {
					ext = e.ext
					break
				}
				r -= e.w
			}
			size = logUniform(1<<10, 64<<10)
		}
		if err := writeFile(filepath.Join(x.path, fmt.Sprintf("f%06d.%s", i, ext)), size, content); err != nil {
			return treeSpec{}, err
		}
		spec.bytes += size
		spec.depth = max(spec.depth, x.level)
		if !slices.Contains(spec.exts, ext) {
			spec.exts = append(spec.exts, ext)
		}
	}
	slices.Sort(spec.exts)
	return spec, nil
}

// writeFile writes size bytes of src to path (the many small files are not
// fsynced one by one: the sync before every measured command makes them
// durable).
func writeFile(path string, size int64, src io.Reader) error {
	b := make([]byte, size)
	if _, err := io.ReadFull(src, b); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
