package anchor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
)

// runTree is a governance tree with a repo and its open node, anchored by
// run: a rule takes docs/**/*.md for every event.
type runTree struct {
	t       *testing.T
	rootDir string
	root    tree.Root
	paths   tree.Paths
	n       *node.Node
	cfg     Config
	events  int
}

func newRunTree(t *testing.T, files map[string]string) *runTree {
	t.Helper()
	dir := t.TempDir()
	rt := &runTree{t: t, rootDir: filepath.Join(dir, "root"), paths: tree.DefaultPaths(), cfg: DefaultConfig()}
	all := map[string]string{rt.paths.EventsLog: tree.InitLine + "\n"}
	for p, s := range files {
		all[p] = s
	}
	writeFiles(t, rt.rootDir, all)
	rt.root = openRoot(t, rt.rootDir)
	repo := filepath.Join(dir, "repo")
	if _, err := node.Init(repo, node.Config{Profile: node.ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(context.Background(), repo, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	rt.n = n
	rt.cfg.Rules = []Rule{{Match: []string{"*"}, Globs: []string{"docs/**/*.md"}}}
	return rt
}

// manifest is the manifest file's path.
func (rt *runTree) manifest() string { return filepath.Join(rt.rootDir, rt.paths.Manifest) }

// run appends an event and anchors, with the options adjusted by edit.
func (rt *runTree) run(edit func(*RunOptions)) (*Result, error) {
	rt.t.Helper()
	rt.events++
	if _, err := tree.AppendEvent(filepath.Join(rt.rootDir, rt.paths.EventsLog), tree.NewEvent{Event: "change", Version: "v" + strings.Repeat("1", rt.events)}); err != nil {
		rt.t.Fatal(err)
	}
	params, _ := node.ParamsFor(node.CIDProfileDefault)
	o := RunOptions{
		Root: rt.root, Paths: rt.paths, Config: rt.cfg, Params: params, Signer: rt.n, OnCommit: rt.n.SetChainHead,
		OpenBatch: func(ctx context.Context) (Batch, error) { return rt.n.NewBatch(ctx) },
		Now:       func() time.Time { return time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) },
	}
	if edit != nil {
		edit(&o)
	}
	return Run(context.Background(), o)
}

// TestRunRefusesManifestChangedDuringRun: a run adds the manifest it
// replaces from the file again at commit (its bytes are not held through
// the run). When something other than ssid-anchor changed that file in the
// meantime, the run fails and writes nothing, instead of chaining a
// predecessor it never read.
func TestRunRefusesManifestChangedDuringRun(t *testing.T) {
	rt := newRunTree(t, map[string]string{"docs/a.md": "a", "docs/b.md": "b"})
	if _, err := rt.run(nil); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, rt.rootDir, map[string]string{"docs/b.md": "b, changed"})
	var edited []byte
	res, err := rt.run(func(o *RunOptions) {
		o.OnFile = func(string, int64) func(int) {
			if edited == nil {
				b, err := os.ReadFile(rt.manifest())
				if err != nil {
					t.Fatal(err)
				}
				edited = bytes.Replace(b, []byte(`"manifest_version"`), []byte(`"edited_by_hand": true,
  "manifest_version"`), 1)
				if err := os.WriteFile(rt.manifest(), edited, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			return nil
		}
	})
	if err == nil || !strings.Contains(err.Error(), "changed on disk during the run") {
		t.Fatalf("run over a manifest edited mid-run: res %+v, err %v; want the change reported", res, err)
	}
	now, _ := os.ReadFile(rt.manifest())
	if !bytes.Equal(now, edited) {
		t.Errorf("the edited manifest was replaced:\n%s", now)
	}
	// Once the edit is there to be read, the next run chains it.
	if _, err := rt.run(nil); err != nil {
		t.Fatalf("run after the edit: %v", err)
	}
	m, _, err := LoadManifest(rt.manifest())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Get("edited_by_hand"); !ok {
		t.Error("the hand edit was not kept by the next run")
	}
}

// TestLongRunAddsOneChainLink: a run that saves a checkpoint before every
// file (checkpoint_interval 1ns) writes many signed, pinned manifests, but
// each names the manifest the run started from as its predecessor and only
// the last becomes the chain head: the chain gains one link per run, and
// verify (chain, signatures, head) passes.
func TestLongRunAddsOneChainLink(t *testing.T) {
	files := map[string]string{}
	for i := range 6 {
		files[filepath.Join("docs", string(rune('a'+i))+".md")] = strings.Repeat("x", i+1)
	}
	rt := newRunTree(t, files)
	rt.cfg.Checkpoint = "1ns"
	run := func() *Result {
		t.Helper()
		res, err := rt.run(nil)
		if err != nil {
			t.Fatalf("run %d: %v", rt.events, err)
		}
		return res
	}
	first := run()
	if len(first.Checkpoints) < 4 {
		t.Fatalf("the first run saved %d checkpoints, want one before each file after the first", len(first.Checkpoints))
	}
	if first.PreviousCID != "" {
		t.Errorf("the first run of a new manifest names a predecessor: %s", first.PreviousCID)
	}
	for i := range 6 {
		writeFiles(t, rt.rootDir, map[string]string{filepath.Join("docs", string(rune('a'+i))+".md"): "changed " + strings.Repeat("y", i)})
	}
	second := run()
	if len(second.Checkpoints) < 4 || second.PreviousCID != first.ManifestCID {
		t.Fatalf("second run: %d checkpoints, previous %s; want several and %s (the first run's manifest)", len(second.Checkpoints), second.PreviousCID, first.ManifestCID)
	}
	m, _, err := LoadManifest(rt.manifest())
	if err != nil {
		t.Fatal(err)
	}
	if m.PreviousCID != first.ManifestCID || len(m.Records) != 12 {
		t.Fatalf("final manifest: previous %s, %d records; want %s and 12", m.PreviousCID, len(m.Records), first.ManifestCID)
	}
	head, err := rt.n.ChainHead()
	if err != nil || head != second.ManifestCID {
		t.Fatalf("chain head %q (%v), want the final manifest %s", head, err, second.ManifestCID)
	}
	rep, err := Verify(context.Background(), VerifyOptions{Root: rt.root, ManifestPath: rt.manifest(), Store: rt.n, StoreName: "the repo", Pins: rt.n, ExpectHead: head})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Chain.Manifests) != 2 {
		t.Fatalf("verify: ok %v, chain %+v, signatures %+v; want ok and two links (one per run)", rep.OK, rep.Chain, rep.Signatures)
	}
}
