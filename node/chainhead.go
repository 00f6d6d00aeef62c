package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ipfs/go-cid"
)

// chainHeadFile holds the CID of the last manifest an anchoring run on this
// repo committed (or an import carried in), so verify can tell a manifest
// that was rolled back or rewritten from the one this repo vouches for.
const chainHeadFile = "ssid-anchor-chain-head"

// ChainHead returns the manifest CID recorded with SetChainHead, or "" when
// this repo has recorded none (it never anchored nor imported a manifest).
func (n *Node) ChainHead() (string, error) {
	b, err := os.ReadFile(filepath.Join(n.repoPath, chainHeadFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the chain head: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if _, err := cid.Decode(s); err != nil {
		return "", fmt.Errorf("chain head %s: %q is not a CID (the file was edited; remove it and re-run anchor)", filepath.Join(n.repoPath, chainHeadFile), s)
	}
	return s, nil
}

// SetChainHead records manifestCID as the chain head: temp file, fsync,
// rename, fsync of the repo directory, so a crash leaves the old head or the
// new one.
func (n *Node) SetChainHead(manifestCID string) error {
	if _, err := cid.Decode(manifestCID); err != nil {
		return fmt.Errorf("recording the chain head: %q is not a CID", manifestCID)
	}
	path := filepath.Join(n.repoPath, chainHeadFile)
	f, err := os.CreateTemp(n.repoPath, "."+chainHeadFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("recording the chain head: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(manifestCID + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("recording the chain head: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("recording the chain head: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("recording the chain head: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("recording the chain head: %w", err)
	}
	d, err := os.Open(n.repoPath)
	if err != nil {
		return fmt.Errorf("recording the chain head: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("recording the chain head: %w", err)
	}
	return nil
}
