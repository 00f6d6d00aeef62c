package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/tree"
)

// TestAnchorCountsFollowTheManifest: the daemon's remembered count is
// recounted whenever the manifest file changes: replaced by rename, or
// edited in place with its size and modification time kept (only the
// change time tells).
func TestAnchorCountsFollowTheManifest(t *testing.T) {
	root := newTree(t)
	paths := tree.DefaultPaths()
	man := filepath.Join(root, tManifest)
	write := func(n int) {
		t.Helper()
		m := anchor.NewManifest("v4.3", time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
		for i := range n {
			m.Records = append(m.Records, anchor.Record{FilePath: "docs/f" + string(rune('a'+i)) + ".md", FileHash: "00", IPFSCID: "Qm", Pinned: true})
		}
		b, err := m.MarshalUnsigned()
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.WriteFileAtomic(man, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var c anchorCounts
	write(3)
	if got, _ := c.count(context.Background(), root, paths, nil); got.Err != "" || got.Records != 3 || got.ManifestPinned != 3 {
		t.Fatalf("first count: %+v", got)
	}
	if got, _ := c.count(context.Background(), root, paths, nil); got.Records != 3 {
		t.Fatalf("second count: %+v", got)
	}
	write(4) // replaced by rename: a new inode
	if got, _ := c.count(context.Background(), root, paths, nil); got.Records != 4 {
		t.Fatalf("after a rename: %+v, want 4 records", got)
	}
	st, err := os.Stat(man)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(man)
	edited := bytes.Replace(b, []byte(`"pinned": true`), []byte(`"pinned":false`), 1) // same length
	if bytes.Equal(edited, b) || len(edited) != len(b) {
		t.Fatal("setup: the edit did not apply")
	}
	if err := os.WriteFile(man, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(man, time.Time{}, st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.count(context.Background(), root, paths, nil); got.ManifestPinned != 3 {
		t.Fatalf("after an edit in place with size and mtime kept: %+v, want 3 pinned", got)
	}
}
