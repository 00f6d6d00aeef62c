package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
)

// TestVerifyStreamedJSONIsTheWholeDocument: verify prints records as they
// settle, cutting the --json document around its records array; the bytes
// must be exactly what encoding the whole report at once gives, with
// records passing and failing, with CAR reports after them, and with none.
func TestVerifyStreamedJSONIsTheWholeDocument(t *testing.T) {
	tr := vcAnchoredTree(t)
	ctx := context.Background()
	manifest := filepath.Join(tr.root, tree.DefaultPaths().Manifest)

	// whole verifies as runVerify does, without a sink, and encodes the
	// report in one go.
	whole := func(t *testing.T, mod func(*anchor.VerifyOptions)) []byte {
		t.Helper()
		root, err := tree.OpenRoot(tr.root)
		if err != nil {
			t.Fatal(err)
		}
		n, err := node.Open(ctx, tr.repo, node.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		head, err := n.ChainHead()
		if err != nil {
			t.Fatal(err)
		}
		o := anchor.VerifyOptions{Root: root, ManifestPath: manifest, Store: n, StoreName: "the repo", Pins: n, ExpectHead: head}
		if mod != nil {
			mod(&o)
		}
		rep, err := anchor.Verify(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := writeJSON(&b, verifyResult{VerifyReport: rep}); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	streamed := func(t *testing.T, o verifyOptions) []byte {
		t.Helper()
		g, out, _ := vcGlobals(tr.root, tr.repo)
		g.JSON = true
		_ = runVerify(ctx, o, g)
		return out.Bytes()
	}
	same := func(t *testing.T, got, want []byte) {
		t.Helper()
		if !bytes.Equal(got, want) {
			t.Fatalf("streamed --json differs from the whole document:\n--- streamed\n%s\n--- whole\n%s", got, want)
		}
	}

	t.Run("passing", func(t *testing.T) {
		same(t, streamed(t, verifyOptions{}), whole(t, nil))
	})

	t.Run("no records", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "empty.json")
		if err := os.WriteFile(empty, []byte(`{"anchors": []}`), 0o644); err != nil {
			t.Fatal(err)
		}
		got := streamed(t, verifyOptions{Manifest: empty})
		if !bytes.Contains(got, []byte(`"records": []`)) {
			t.Fatalf("no empty records array:\n%s", got)
		}
		same(t, got, whole(t, func(o *anchor.VerifyOptions) { o.ManifestPath = empty }))
	})

	t.Run("with CAR reports", func(t *testing.T) {
		_, cars := vcExport(t, tr)
		got := streamed(t, verifyOptions{CARs: cars})
		set, err := node.OpenCARs(cars)
		if err != nil {
			t.Fatal(err)
		}
		defer set.Close()
		rep, err := anchor.Verify(ctx, anchor.VerifyOptions{ManifestPath: manifest, Store: set, StoreName: "the CAR files", Root: mustRoot(t, tr.root)})
		if err != nil {
			t.Fatal(err)
		}
		known := rep.CIDs()
		res := verifyResult{VerifyReport: rep, CARs: set.Reports(ctx, func(c cid.Cid) bool { return known[c.KeyString()] })}
		var want bytes.Buffer
		if err := writeJSON(&want, res); err != nil {
			t.Fatal(err)
		}
		if len(res.CARs) == 0 {
			t.Fatal("no CAR reports to compare")
		}
		same(t, got, want.Bytes())
	})

	t.Run("failing records", func(t *testing.T) {
		p := filepath.Join(tr.root, tree.DefaultPaths().DashboardMarkdown)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[100] ^= 1
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		got := streamed(t, verifyOptions{})
		if !bytes.Contains(got, []byte(`"status": "failed"`)) {
			t.Fatalf("the tampered file did not fail:\n%s", got)
		}
		same(t, got, whole(t, nil))
	})
}

func mustRoot(t *testing.T, dir string) tree.Root {
	t.Helper()
	r, err := tree.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
