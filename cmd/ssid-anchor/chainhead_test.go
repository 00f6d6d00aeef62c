package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
)

func chainHeadOf(t *testing.T, repo string) string {
	t.Helper()
	n, err := node.Open(context.Background(), repo, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	h, err := n.ChainHead()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestVerifyRefusesRolledBackManifest: the repo remembers the manifest its
// last anchoring run committed; every way of rolling the tree's manifest
// back or rewriting it fails verify with exit 1, naming that CID. The audit
// box's repo gets its head from the import of the exported CARs.
func TestVerifyRefusesRolledBackManifest(t *testing.T) {
	tr := vcAnchoredTree(t)
	manPath := filepath.Join(tr.root, tree.DefaultPaths().Manifest)
	committed, err := os.ReadFile(manPath)
	if err != nil {
		t.Fatal(err)
	}
	head := chainHeadOf(t, tr.repo)
	if head == "" {
		t.Fatal("the anchoring run recorded no chain head in the repo")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(committed, &m); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(m["previous_manifest_cid"]), "Qm") || len(m["processed_events"]) == 0 {
		t.Fatalf("the anchored manifest lacks previous_manifest_cid/processed_events: %s", committed)
	}
	edit := func(f func(m map[string]any)) []byte {
		var v map[string]any
		json.Unmarshal(committed, &v)
		f(v)
		b, _ := json.MarshalIndent(v, "", "  ")
		return b
	}
	verify := func(t *testing.T, root, repo string) (int, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"ssid-anchor", "--root", root, "--repo", repo, "verify"}, &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, msg := verify(t, tr.root, tr.repo); code != 0 || !strings.Contains(msg, "head    ok") {
		t.Fatalf("the committed manifest: exit %d\n%s", code, msg)
	}
	previous := vcTestdata(t, "ipfs_anchor_manifest.json") // what the run replaced
	cases := map[string][]byte{
		"anchors emptied": edit(func(v map[string]any) { v["anchors"] = []any{} }),
		"chain and watermark deleted": edit(func(v map[string]any) {
			delete(v, "previous_manifest_cid")
			delete(v, "processed_events")
		}),
		"truncated":             edit(func(v map[string]any) { a := v["anchors"].([]any); v["anchors"] = a[:len(a)-1] }),
		"rewritten":             edit(func(v map[string]any) { v["description"] = "nothing to see" }),
		"the previous manifest": previous,
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			vcWrite(t, manPath, b)
			defer vcWrite(t, manPath, committed)
			code, msg := verify(t, tr.root, tr.repo)
			if code != exitFailure || !strings.Contains(msg, "neither the chain head this repo last committed, "+head) {
				t.Fatalf("exit %d, want 1 naming the head %s\n%s", code, head, msg)
			}
		})
	}

	t.Run("audit box import records the carried head", func(t *testing.T) {
		_, cars := vcExport(t, tr)
		audit := filepath.Join(t.TempDir(), "repo")
		if code, _, errb := runCLI(t, "--repo", audit, "init"); code != 0 {
			t.Fatal(errb)
		}
		if code, out, errb := runCLI(t, append([]string{"--repo", audit, "import"}, cars...)...); code != 0 || !strings.Contains(out, "chain head "+head) {
			t.Fatalf("import: exit %d\n%s\n%s", code, out, errb)
		}
		if code, msg := verify(t, tr.root, audit); code != 0 {
			t.Fatalf("verify on the audit box: exit %d\n%s", code, msg)
		}
		vcWrite(t, manPath, cases["anchors emptied"])
		defer vcWrite(t, manPath, committed)
		if code, msg := verify(t, tr.root, audit); code != exitFailure || !strings.Contains(msg, head) {
			t.Fatalf("rolled-back manifest on the audit box: exit %d\n%s", code, msg)
		}
		// Importing an older manifest's CAR again does not move the head back.
		var prevCAR string
		for _, c := range cars {
			if strings.Contains(string(m["previous_manifest_cid"]), strings.TrimSuffix(filepath.Base(c), ".car")) {
				prevCAR = c
			}
		}
		if prevCAR == "" {
			t.Fatalf("export wrote no CAR of the previous manifest %s", m["previous_manifest_cid"])
		}
		if code, _, errb := runCLI(t, "--repo", audit, "import", prevCAR); code != 0 {
			t.Fatal(errb)
		}
		if got := chainHeadOf(t, audit); got != head {
			t.Fatalf("importing the previous manifest moved the head to %s", got)
		}
	})
}
