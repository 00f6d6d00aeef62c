package release

import (
	"archive/zip"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
)

// releaseTree writes every input of quarter q, each a few bytes except the
// operations guide, which gets guide.
func releaseTree(t *testing.T, q Quarter, guide func(w io.Writer)) (string, tree.Root) {
	t.Helper()
	dir := t.TempDir()
	for _, in := range Inputs(tree.DefaultPaths(), q) {
		body := "# " + in.Entry + "\n"
		if in.Entry == "COMPLIANCE_REPORT.md" {
			body += "**Overall Compliance Score:** 96/100\n"
		}
		if in.Entry == "registry_events.log" {
			body = "Registry events initialized.\n"
		}
		write(t, dir, in.Path, body)
	}
	f, err := os.Create(filepath.Join(dir, "05_documentation/OPERATIONS_GUIDE.md"))
	if err != nil {
		t.Fatal(err)
	}
	guide(f)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := tree.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return dir, r
}

// randomBytes writes n incompressible bytes from a logged seed.
func randomBytes(t *testing.T, n int) func(io.Writer) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("random input: %d bytes, seed %d", n, seed)
	return func(w io.Writer) {
		rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24), byte(seed >> 32), byte(seed >> 40), byte(seed >> 48), byte(seed >> 56)})
		if _, err := io.CopyN(w, rng, int64(n)); err != nil {
			t.Fatal(err)
		}
	}
}

// countdownCtx is a context that ends after a number of Err calls: the
// point where Build notices it is exactly where it checks, with no clock.
type countdownCtx struct {
	context.Context
	left atomic.Int64
	once sync.Once
	done chan struct{}
}

func newCountdown(n int64) *countdownCtx {
	c := &countdownCtx{Context: context.Background(), done: make(chan struct{})}
	c.left.Store(n)
	return c
}

func (c *countdownCtx) Err() error {
	if c.left.Add(-1) < 0 {
		c.once.Do(func() { close(c.done) })
		return context.Canceled
	}
	return nil
}

func (c *countdownCtx) Done() <-chan struct{} { return c.done }

// TestBuildStopsInsideAnEntry is issue 25.8: bundle went on zipping after
// SIGINT (main looked at the context once, after the whole zip was built
// in memory). The context now ends the build inside the entry being read,
// and nothing is left behind: no bundle, no temp file, no manifest, no
// event.
func TestBuildStopsInsideAnEntry(t *testing.T) {
	q, _ := ParseQuarter("2026-Q1")
	dir, r := releaseTree(t, q, randomBytes(t, 8<<20))
	logBefore, _ := os.ReadFile(filepath.Join(dir, tree.DefaultPaths().EventsLog))
	// 8 MiB is 256 reads of 32 KiB: the context ends after 40 checks, in
	// the middle of the guide (the seventh entry).
	ctx := newCountdown(40)
	_, err := Build(ctx, Options{Root: r, Paths: tree.DefaultPaths(), Quarter: q, Blueprint: "v4.3"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Build with a context that ended: %v, want context.Canceled", err)
	}
	if left := ctx.left.Load(); left < -3 {
		t.Errorf("Build went on checking a context that had ended (%d more checks)", -left)
	}
	lay := LayoutFor(tree.DefaultPaths(), q)
	entries, _ := os.ReadDir(filepath.Join(dir, filepath.Dir(lay.Bundle)))
	for _, e := range entries {
		t.Errorf("left in the releases directory: %s", e.Name())
	}
	if _, err := os.Stat(filepath.Join(dir, lay.Manifest)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("release manifest written by an interrupted build: %v", err)
	}
	if logAfter, _ := os.ReadFile(filepath.Join(dir, tree.DefaultPaths().EventsLog)); string(logAfter) != string(logBefore) {
		t.Errorf("release event appended by an interrupted build")
	}
}

// TestBuildStreamsToDisk is the other half of issue 25.8: main built the
// whole zip in memory (3.75 GB of RSS for a 1 GB input). The bundle of a
// 32 MiB incompressible input must now allocate a small fraction of that,
// and still be a zip that reads back with its entries intact.
func TestBuildStreamsToDisk(t *testing.T) {
	q, _ := ParseQuarter("2026-Q1")
	const size = 32 << 20
	dir, r := releaseTree(t, q, randomBytes(t, size))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res, err := Build(context.Background(), Options{Root: r, Paths: tree.DefaultPaths(), Quarter: q, Blueprint: "v4.3"})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("bundle of %d bytes: %d bytes allocated", res.SizeBytes, alloc)
	if res.SizeBytes < size {
		t.Fatalf("bundle of %d bytes holds less than its %d byte input", res.SizeBytes, size)
	}
	if alloc > size/4 {
		t.Errorf("building a %d byte bundle allocated %d bytes: it is being held in memory", res.SizeBytes, alloc)
	}
	zr, err := zip.OpenReader(filepath.Join(dir, res.Bundle))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rc) // checks the CRC
		rc.Close()
		if err != nil || (f.Name == "OPERATIONS_GUIDE.md" && n != size) {
			t.Errorf("%s: %d bytes, %v", f.Name, n, err)
		}
	}
	if got := strings.Join(names, ","); got != strings.Join(res.Files, ",") {
		t.Errorf("entries %s, want %s", got, strings.Join(res.Files, ","))
	}
	entries, _ := os.ReadDir(filepath.Dir(filepath.Join(dir, res.Bundle)))
	if len(entries) != 1 {
		t.Errorf("the releases directory holds %d files, want only the bundle", len(entries))
	}
}
