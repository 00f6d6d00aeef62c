package node

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ipfs/go-cid"
)

// chainHeadFile holds the CID of the last manifest an anchoring run on this
// repo committed (or an import carried in), so verify can tell a manifest
// that was rolled back or rewritten from the one this repo vouches for.
const chainHeadFile = "ssid-anchor-chain-head"

// maxChainHeadSize bounds what ChainHead reads: one CID and a newline.
const maxChainHeadSize = 256

// ChainHeadPath is where the repo keeps its chain head, for messages.
func (n *Node) ChainHeadPath() string { return filepath.Join(n.repoPath, chainHeadFile) }

// ChainHead returns the manifest CID recorded with SetChainHead, or "" when
// this repo has recorded none (it never anchored nor imported a manifest,
// or the file was removed: verify says which).
//
// The file's content is never quoted in an error: it is read only when it
// is a regular file (not followed as a symlink, which could lead to any
// file of the box) and at most maxChainHeadSize bytes of it.
func (n *Node) ChainHead() (string, error) {
	path := n.ChainHeadPath()
	fix := "remove it and run `ssid-anchor anchor` (or `ssid-anchor import` the anchoring box's export) to record the head again"
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if errors.Is(err, syscall.ELOOP) {
		return "", fmt.Errorf("chain head %s is a symlink, not the file ssid-anchor writes; %s", path, fix)
	}
	if err != nil {
		return "", fmt.Errorf("reading the chain head %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("reading the chain head %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("chain head %s is not a regular file (%s); %s", path, st.Mode().Type(), fix)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxChainHeadSize+1))
	if err != nil {
		return "", fmt.Errorf("reading the chain head %s: %w", path, err)
	}
	if len(b) > maxChainHeadSize {
		return "", fmt.Errorf("chain head %s is %d bytes, but holds one CID (the file was replaced); %s", path, st.Size(), fix)
	}
	s := strings.TrimSpace(string(b))
	if _, err := cid.Decode(s); err != nil {
		return "", fmt.Errorf("chain head %s does not hold a CID (%d bytes; the file was edited or damaged); %s", path, len(b), fix)
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
	path := n.ChainHeadPath()
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
