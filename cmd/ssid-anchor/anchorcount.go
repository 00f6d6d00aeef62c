package main

import (
	"fmt"
	"sync"

	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/statcache"
	"github.com/ssid/ssid-anchor/anchor/tree"
)

// anchorCounts is countAnchors remembered while the manifest file is the
// same one (its size, times, inode and device): the daemon's /status is
// scraped every few seconds, and counting 20,000 records reads and decodes
// the whole manifest each time, 12 MB read and about 30 MB of garbage a
// scrape (issue 22's soak). The manifest is replaced by rename (a new
// inode) or edited (a new change time), either of which is a new count.
type anchorCounts struct {
	mu    sync.Mutex
	key   string
	stats anchorStats
	head  *anchor.Manifest
}

func (c *anchorCounts) count(root string, paths tree.Paths) (anchorStats, *anchor.Manifest) {
	key := manifestKey(root, paths.Manifest)
	c.mu.Lock()
	defer c.mu.Unlock()
	if key != "" && key == c.key {
		return c.stats, c.head
	}
	s, m := countAnchors(root, paths)
	c.key, c.stats, c.head = "", s, m
	if s.Err == "" {
		c.key = key
	}
	return s, m
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
