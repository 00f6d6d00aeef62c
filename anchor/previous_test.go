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

// TestRunRefusesManifestChangedDuringRun: a run adds the manifest it
// replaces from the file again at commit (its bytes are not held through
// the run). When something other than ssid-anchor changed that file in the
// meantime, the run fails and writes nothing, instead of chaining a
// predecessor it never read.
func TestRunRefusesManifestChangedDuringRun(t *testing.T) {
	dir := t.TempDir()
	rootDir := filepath.Join(dir, "root")
	p := tree.DefaultPaths()
	writeFiles(t, rootDir, map[string]string{p.EventsLog: tree.InitLine + "\n", "docs/a.md": "a", "docs/b.md": "b"})
	root := openRoot(t, rootDir)
	repo := filepath.Join(dir, "repo")
	if _, err := node.Init(repo, node.Config{Profile: node.ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	params, _ := node.ParamsFor(node.CIDProfileDefault)
	cfg := DefaultConfig()
	cfg.Rules = []Rule{{Match: []string{"*"}, Globs: []string{"docs/*.md"}}}
	n, err := node.Open(context.Background(), repo, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	manPath := filepath.Join(rootDir, p.Manifest)
	run := func(event string, onFile func(string, int64) func(int)) (*Result, error) {
		if _, err := tree.AppendEvent(filepath.Join(rootDir, p.EventsLog), tree.NewEvent{Event: event, Version: "v1"}); err != nil {
			t.Fatal(err)
		}
		return Run(context.Background(), RunOptions{
			Root: root, Paths: p, Config: cfg, Params: params, Signer: n, OnFile: onFile,
			OpenBatch: func(ctx context.Context) (Batch, error) { return n.NewBatch(ctx) },
			Now:       func() time.Time { return time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) },
		})
	}
	if _, err := run("first", nil); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, rootDir, map[string]string{"docs/b.md": "b, changed"})
	var edited []byte
	res, err := run("second", func(string, int64) func(int) {
		if edited == nil {
			b, err := os.ReadFile(manPath)
			if err != nil {
				t.Fatal(err)
			}
			edited = bytes.Replace(b, []byte(`"manifest_version"`), []byte(`"edited_by_hand": true,
  "manifest_version"`), 1)
			if err := os.WriteFile(manPath, edited, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "changed on disk during the run") {
		t.Fatalf("run over a manifest edited mid-run: res %+v, err %v; want the change reported", res, err)
	}
	now, _ := os.ReadFile(manPath)
	if !bytes.Equal(now, edited) {
		t.Errorf("the edited manifest was replaced:\n%s", now)
	}
	// Once the edit is there to be read, the next run chains it.
	if _, err := run("third", nil); err != nil {
		t.Fatalf("run after the edit: %v", err)
	}
	m, _, err := LoadManifest(manPath)
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
	dir := t.TempDir()
	rootDir := filepath.Join(dir, "root")
	p := tree.DefaultPaths()
	files := map[string]string{p.EventsLog: tree.InitLine + "\n"}
	for i := range 6 {
		files[filepath.Join("docs", string(rune('a'+i))+".md")] = strings.Repeat("x", i+1)
	}
	writeFiles(t, rootDir, files)
	root := openRoot(t, rootDir)
	repo := filepath.Join(dir, "repo")
	if _, err := node.Init(repo, node.Config{Profile: node.ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	params, _ := node.ParamsFor(node.CIDProfileDefault)
	cfg := DefaultConfig()
	cfg.Rules = []Rule{{Match: []string{"*"}, Globs: []string{"docs/*.md"}}}
	cfg.Checkpoint = "1ns"
	n, err := node.Open(context.Background(), repo, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	manPath := filepath.Join(rootDir, p.Manifest)
	run := func(event string) *Result {
		t.Helper()
		if _, err := tree.AppendEvent(filepath.Join(rootDir, p.EventsLog), tree.NewEvent{Event: event, Version: "v1"}); err != nil {
			t.Fatal(err)
		}
		res, err := Run(context.Background(), RunOptions{
			Root: root, Paths: p, Config: cfg, Params: params, Signer: n, OnCommit: n.SetChainHead,
			OpenBatch: func(ctx context.Context) (Batch, error) { return n.NewBatch(ctx) },
			Now:       func() time.Time { return time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) },
		})
		if err != nil {
			t.Fatalf("run %s: %v", event, err)
		}
		return res
	}
	first := run("first")
	if len(first.Checkpoints) < 4 {
		t.Fatalf("the first run saved %d checkpoints, want one before each file after the first", len(first.Checkpoints))
	}
	if first.PreviousCID != "" {
		t.Errorf("the first run of a new manifest names a predecessor: %s", first.PreviousCID)
	}
	for i := range 6 {
		writeFiles(t, rootDir, map[string]string{filepath.Join("docs", string(rune('a'+i))+".md"): "changed " + strings.Repeat("y", i)})
	}
	second := run("second")
	if len(second.Checkpoints) < 4 || second.PreviousCID != first.ManifestCID {
		t.Fatalf("second run: %d checkpoints, previous %s; want several and %s (the first run's manifest)", len(second.Checkpoints), second.PreviousCID, first.ManifestCID)
	}
	m, _, err := LoadManifest(manPath)
	if err != nil {
		t.Fatal(err)
	}
	if m.PreviousCID != first.ManifestCID || len(m.Records) != 12 {
		t.Fatalf("final manifest: previous %s, %d records; want %s and 12", m.PreviousCID, len(m.Records), first.ManifestCID)
	}
	head, err := n.ChainHead()
	if err != nil || head != second.ManifestCID {
		t.Fatalf("chain head %q (%v), want the final manifest %s", head, err, second.ManifestCID)
	}
	rep, err := Verify(context.Background(), VerifyOptions{Root: root, ManifestPath: manPath, Store: n, StoreName: "the repo", Pins: n, ExpectHead: head})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Chain.Manifests) != 2 {
		t.Fatalf("verify: ok %v, chain %+v, signatures %+v; want ok and two links (one per run)", rep.OK, rep.Chain, rep.Signatures)
	}
}
