package anchor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
)

// cursorFixture is a tree whose log holds many events no rule takes, and a
// node to anchor into.
type cursorFixture struct {
	root  tree.Root
	paths tree.Paths
	repo  string
	log   string
}

func newCursorFixture(t *testing.T, events int) cursorFixture {
	t.Helper()
	dir := t.TempDir()
	rootDir := filepath.Join(dir, "root")
	p := tree.DefaultPaths()
	var b strings.Builder
	b.WriteString(tree.InitLine + "\n")
	for i := range events {
		fmt.Fprintf(&b, "{\"event\":\"noise_%d\",\"version\":\"v1\",\"timestamp\":\"2026-01-01T00:00:00Z\"}\n", i)
	}
	writeFiles(t, rootDir, map[string]string{p.EventsLog: b.String(), "data/a.txt": "A", "data/b.txt": "B"})
	f := cursorFixture{root: openRoot(t, rootDir), paths: p, repo: filepath.Join(dir, "repo"), log: filepath.Join(rootDir, p.EventsLog)}
	if _, err := node.Init(f.repo, node.Config{Profile: node.ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f cursorFixture) run(t *testing.T, reprocess string) *Result {
	t.Helper()
	params, err := node.ParamsFor(node.CIDProfileDefault)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(context.Background(), f.repo, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	cfg := DefaultConfig()
	cfg.Rules = []Rule{
		{Match: []string{"release_a"}, Globs: []string{"data/a.txt"}},
		{Match: []string{"release_b"}, Globs: []string{"data/b.txt", "data/missing-*.txt"}},
	}
	res, err := Run(context.Background(), RunOptions{
		Root: f.root, Paths: f.paths, Config: cfg, Params: params,
		OpenBatch: func(ctx context.Context) (Batch, error) { return n.NewBatch(ctx) },
		Signer:    n, Reprocess: reprocess,
		Now: func() time.Time { return time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		t.Fatalf("anchoring run: %v", err)
	}
	return res
}

func (f cursorFixture) manifest(t *testing.T) *Manifest {
	t.Helper()
	m, _, err := LoadManifestIn(f.root, f.paths.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (f cursorFixture) appendText(t *testing.T, s string) {
	t.Helper()
	lf, err := os.OpenFile(f.log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if _, err := lf.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func logSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestRunReadsOnlyAppendedEvents: the manifest keeps the registry cursor,
// and the next run reads only the bytes appended after it, yet reports
// what a full read would (new events, unmatched globs, line numbers).
func TestRunReadsOnlyAppendedEvents(t *testing.T) {
	const many = 5000
	f := newCursorFixture(t, many)
	f.appendText(t, `{"event":"release_a","version":"v1"}`+"\n")

	res := f.run(t, "")
	if r := res.LogRead(); r.Mode != tree.ReadFull || r.Events != many+1 || res.NewEvents != many+1 || len(res.Records) != 1 {
		t.Fatalf("first run: read %+v, %d new events, records %+v", r, res.NewEvents, res.Records)
	}
	m := f.manifest(t)
	if m.Processed.Count != many+1 || m.Processed.Offset != logSize(t, f.log) || m.Processed.TailSHA256 == "" || m.Processed.Lines != many+2 {
		t.Fatalf("manifest watermark %+v, log is %d bytes", m.Processed, logSize(t, f.log))
	}

	added := `{"event":"noise_x","version":"v1"}` + "\n" +
		"{\n  \"event\": \"release_b\",\n  \"version\": \"v2\"\n}\n" +
		`{"event":"noise_y","version":"v1"}` + "\n"
	f.appendText(t, added)
	res = f.run(t, "")
	r := res.LogRead()
	if r.Mode != tree.ReadAppended || r.From != m.Processed.Offset || r.BytesRead != int64(len(added)) || r.Events != 3 {
		t.Fatalf("second run read %+v; want only the %d appended bytes after offset %d (3 events)", r, len(added), m.Processed.Offset)
	}
	if res.NewEvents != 3 || len(res.Records) != 1 || res.Records[0].FilePath != "data/b.txt" || res.Records[0].EventVersion != "v2" {
		t.Fatalf("second run: %d new events, records %+v", res.NewEvents, res.Records)
	}
	// The unmatched glob of the new event, with its true line in the log.
	if len(res.Unmatched) != 1 || res.Unmatched[0].Glob != "data/missing-*.txt" || res.Unmatched[0].Line != many+4 {
		t.Fatalf("unmatched globs %+v, want data/missing-*.txt at line %d", res.Unmatched, many+4)
	}
	m2 := f.manifest(t)
	if m2.Processed.Count != many+4 || m2.Processed.Offset != logSize(t, f.log) {
		t.Fatalf("manifest watermark after the append %+v", m2.Processed)
	}

	// Nothing new: nothing read, nothing written.
	res = f.run(t, "")
	if r := res.LogRead(); r.BytesRead != 0 || res.NewEvents != 0 || res.Rewritten {
		t.Fatalf("idle run read %+v, %d new events, rewritten %v", r, res.NewEvents, res.Rewritten)
	}

	// --reprocess still reads from the start.
	res = f.run(t, "all")
	if r := res.LogRead(); r.Mode != tree.ReadFull || r.Events != many+4 || res.Reprocessed != many+4 {
		t.Fatalf("--reprocess all read %+v, reprocessed %d", r, res.Reprocessed)
	}

	// A bad block appended: reported, though no event came.
	f.appendText(t, "{ broken\n}\n")
	res = f.run(t, "")
	if r := res.LogRead(); r.Mode != tree.ReadAppended || len(res.BadBlocks) != 1 || res.BadBlocks[0].Line != many+4+4+1 {
		t.Fatalf("bad block after the cursor: read %+v, bad %+v", r, res.BadBlocks)
	}
}

// TestRunRereadsRewrittenLog: a log truncated or rewritten before the
// cursor is read again whole and every event counts as new (the old
// watermark no longer holds); content identity keeps records single.
func TestRunRereadsRewrittenLog(t *testing.T) {
	f := newCursorFixture(t, 300)
	f.appendText(t, `{"event":"release_a","version":"v1"}`+"\n")
	f.run(t, "")
	before := f.manifest(t).Processed

	// Truncate to 10 noise events, then a new release_b.
	var b strings.Builder
	for i := range 10 {
		fmt.Fprintf(&b, "{\"event\":\"noise_%d\",\"version\":\"v1\",\"timestamp\":\"2026-01-01T00:00:00Z\"}\n", i)
	}
	b.WriteString(`{"event":"release_b","version":"v3"}` + "\n")
	if err := os.WriteFile(f.log, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	res := f.run(t, "")
	r := res.LogRead()
	if r.Mode != tree.ReadRewritten || r.From != 0 || r.Events != 11 || res.NewEvents != 11 {
		t.Fatalf("after truncation: read %+v, %d new events (watermark was %+v)", r, res.NewEvents, before)
	}
	if len(res.Records) != 1 || res.Records[0].FilePath != "data/b.txt" {
		t.Fatalf("after truncation records %+v", res.Records)
	}
	after := f.manifest(t).Processed
	if after.Count != 11 || after.Offset != int64(b.Len()) {
		t.Fatalf("watermark after truncation %+v", after)
	}

	// A manifest written before the cursor existed: read whole.
	if (Watermark{Count: 3, Last: "x"}).cursor() != nil {
		t.Fatal("a watermark without tail hash must not resume")
	}
}
