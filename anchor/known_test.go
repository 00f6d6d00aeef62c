package anchor

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
)

// countingBatch is the node's real batch, counting the files added to it
// (anchorFile passes an observer; manifests are added without one).
type countingBatch struct {
	Batch
	files *[]string
}

func (c countingBatch) AddFile(r io.Reader, p node.ImportParams, observe func([]byte)) (cid.Cid, error) {
	if observe != nil {
		*c.files = append(*c.files, "file")
	}
	return c.Batch.AddFile(r, p, observe)
}

// TestRunAddsOnlyChangedKnownFiles: when a ** rule selects files the
// manifest already records, the unchanged ones are hashed but not added to
// the repo again; a changed one is added, recorded with the CID stock kubo
// gives its new content, and pinned under the run's root.
func TestRunAddsOnlyChangedKnownFiles(t *testing.T) {
	dir := t.TempDir()
	rootDir := filepath.Join(dir, "root")
	p := tree.DefaultPaths()
	writeFiles(t, rootDir, map[string]string{
		p.EventsLog:   tree.InitLine + "\n",
		"docs/a/x.md": "unchanged x", "docs/a/b/y.md": "unchanged y", "docs/z.md": "first z",
	})
	root := openRoot(t, rootDir)
	repo := filepath.Join(dir, "repo")
	if _, err := node.Init(repo, node.Config{Profile: node.ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	params, err := node.ParamsFor(node.CIDProfileDefault)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Rules = []Rule{{Match: []string{"*"}, Globs: []string{"docs/**/*.md"}}}
	run := func(event string) (*Result, []string) {
		t.Helper()
		if _, err := tree.AppendEvent(filepath.Join(rootDir, p.EventsLog), tree.NewEvent{Event: event, Version: "v1"}); err != nil {
			t.Fatal(err)
		}
		n, err := node.Open(context.Background(), repo, node.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		var added []string
		res, err := Run(context.Background(), RunOptions{
			Root: root, Paths: p, Config: cfg, Params: params, Signer: n,
			OpenBatch: func(ctx context.Context) (Batch, error) {
				b, err := n.NewBatch(ctx)
				return countingBatch{b, &added}, err
			},
			Now: func() time.Time { return time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) },
		})
		if err != nil {
			t.Fatalf("run for %s: %v", event, err)
		}
		var want []cid.Cid
		for _, r := range res.Records {
			want = append(want, cid.MustParse(r.IPFSCID))
		}
		pins, err := n.PinStates(context.Background(), want)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Records {
			if pins[cid.MustParse(r.IPFSCID)] == "" {
				t.Errorf("%s: record %s (%s) is not pinned", event, r.FilePath, r.IPFSCID)
			}
		}
		return res, added
	}

	res, added := run("first")
	if len(res.Records) != 3 || len(added) != 3 {
		t.Fatalf("first run: %d records, %d files added; want 3 and 3", len(res.Records), len(added))
	}
	writeFiles(t, rootDir, map[string]string{"docs/z.md": "second z, longer"})
	res, added = run("second")
	if len(res.Records) != 1 || res.Records[0].FilePath != "docs/z.md" {
		t.Fatalf("second run recorded %+v, want only docs/z.md", res.Records)
	}
	if len(added) != 1 {
		t.Errorf("second run added %d files to the repo, want 1 (only the changed one)", len(added))
	}
	if len(res.Skipped) != 2 || !strings.Contains(res.Skipped[0].Reason, "already anchored") {
		t.Errorf("second run skipped %+v, want the two unchanged files", res.Skipped)
	}
	wantCID, err := node.ComputeCID(strings.NewReader("second z, longer"), params, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records[0].IPFSCID != wantCID.String() {
		t.Errorf("changed file recorded as %s, its content's CID is %s", res.Records[0].IPFSCID, wantCID)
	}
}
