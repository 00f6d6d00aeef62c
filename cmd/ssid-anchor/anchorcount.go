package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/statcache"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
)

// anchorCounts is countAnchors remembered while the manifest file is the
// same one (its size, times, inode and device): the daemon's /status is
// scraped every few seconds, and counting 20,000 records reads and decodes
// the whole manifest each time, 12 MB read and about 30 MB of garbage a
// scrape (issue 22's soak). The manifest is replaced by rename (a new
// inode) or edited (a new change time), either of which is a new count.
// The records' CIDs are remembered with the counts; which of them the repo
// pins is asked of the pin set at every count (pins change without the
// manifest changing: a gc, a repo copied without its blocks).
type anchorCounts struct {
	mu    sync.Mutex
	key   string
	stats anchorStats
	head  *anchor.Manifest
	cids  []cid.Cid
}

func (c *anchorCounts) count(ctx context.Context, root string, paths tree.Paths, n *node.Node) (anchorStats, *anchor.Manifest) {
	key := manifestKey(root, paths.Manifest)
	c.mu.Lock()
	defer c.mu.Unlock()
	if key == "" || key != c.key {
		var cids []string
		s, m := countAnchorsCIDs(root, paths, &cids)
		c.key, c.stats, c.head, c.cids = "", s, m, parseCIDs(cids)
		if s.Err == "" {
			c.key = key
		}
	}
	s := c.stats
	s.countPinned(ctx, n, c.cids)
	return s, c.head
}

// parseCIDs parses the records' CIDs, one per record; a record without a
// valid CID gets cid.Undef (never pinned).
func parseCIDs(in []string) []cid.Cid {
	out := make([]cid.Cid, len(in))
	for i, s := range in {
		if c, err := cid.Decode(s); err == nil {
			out[i] = c
		}
	}
	return out
}

// countPinned sets s.Pinned to the records whose CID the repo's pin set
// holds (directly, recursively, or under a pinned run root): one listing
// of the pins and a walk of the run roots' directories (node.PinStates),
// not a call per record. s.ManifestPinned keeps what the records' own
// flags say. Without a node (the repo is held by another process) the
// count is unknown and PinnedErr says why.
func (s *anchorStats) countPinned(ctx context.Context, n *node.Node, cids []cid.Cid) {
	s.ManifestPinned = s.Pinned
	s.Pinned = 0
	if n == nil {
		s.PinnedErr = "the repo is not open: pins not counted"
		return
	}
	pinned, err := repoPinnedSet(ctx, n, cids)
	if err != nil {
		s.PinnedErr = err.Error()
		return
	}
	for _, c := range cids {
		if c.Defined() && pinned[c.KeyString()] {
			s.Pinned++
		}
	}
}

// repoPinnedSet says which of cids the repo pins, keyed by KeyString.
func repoPinnedSet(ctx context.Context, n *node.Node, cids []cid.Cid) (map[string]bool, error) {
	want := make([]cid.Cid, 0, len(cids))
	seen := make(map[string]struct{}, len(cids))
	for _, c := range cids {
		if !c.Defined() {
			continue
		}
		if _, ok := seen[c.KeyString()]; !ok {
			seen[c.KeyString()] = struct{}{}
			want = append(want, c)
		}
	}
	states, err := n.PinStates(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("reading the repo's pins: %w", err)
	}
	out := make(map[string]bool, len(states))
	for c := range states {
		out[c.KeyString()] = true
	}
	return out, nil
}

// manifestKey names the manifest file's metadata, "" when it cannot be
// read (then nothing is remembered).
func manifestKey(root, rel string) string {
	r, err := tree.OpenRoot(root)
	if err != nil {
		return ""
	}
	defer r.Close()
	fi, err := r.Stat(rel)
	if err != nil {
		return ""
	}
	st, ok := statcache.Of(fi)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%s\x00%s\x00%+v", r.Dir(), rel, st)
}
