package anchor

import (
	"context"
	"errors"
	"slices"

	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/node"
)

// storedManifestRefs reads the content with CID c from store and parses it
// as a manifest. ok is false when it does not have a manifest's shape
// (looksLikeManifest). Content that does not start like a JSON object is
// not read past its first block.
func storedManifestRefs(ctx context.Context, store BlockStore, c cid.Cid) (*manifestRefs, bool, error) {
	buf := &jsonObjectBuffer{limitedBuffer: limitedBuffer{max: maxManifestSize}}
	if _, err := store.ReadFile(ctx, c, node.MaxDAGBytes(maxManifestSize), buf); err != nil {
		if buf.notJSON || errors.Is(err, node.ErrDAGTooLarge) {
			return nil, false, nil
		}
		return nil, false, err
	}
	man, err := parseManifestRefs(buf.Bytes())
	if err != nil || !man.looksLikeManifest() {
		return nil, false, nil // another JSON document (a release manifest, ...)
	}
	return man, true, nil
}

// ImportedChain is what the roots of an import say about the manifest
// chain (FindImportedChain).
type ImportedChain struct {
	// Tip is the newest manifest: every other manifest among the roots is
	// in its chain. "" when no root is a manifest, or when they fork.
	Tip string
	// Chain is Tip's chain as the store holds it, newest first.
	Chain []string
	// Forks, when the manifests fork, are the ones no other descends from.
	Forks []string
	// Content are roots with a manifest's shape that are anchored files of
	// the chain (a record's ipfs_cid), not manifests of it.
	Content []string
}

// FindImportedChain recognises the manifests among imported roots by their
// shape and their chain, not by one key: a root is a manifest of the chain
// when it has a manifest's shape (looksLikeManifest) and is not one of the
// files the manifests record. An export holds one CAR per record besides
// the manifests, and governance JSON files with an anchors key are among
// those records. The manifests then form one chain, whose newest is Tip,
// or fork (Forks), which the caller must not paper over.
func FindImportedChain(ctx context.Context, store BlockStore, roots []cid.Cid) (*ImportedChain, error) {
	type candidate struct {
		c     cid.Cid
		chain []string
	}
	var cands []candidate
	recorded := map[string]bool{} // record CIDs of every candidate
	seen := map[string]bool{}
	for _, r := range roots {
		if seen[r.KeyString()] {
			continue
		}
		seen[r.KeyString()] = true
		man, ok, err := storedManifestRefs(ctx, store, r)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		for _, rec := range man.Records {
			if c, err := cid.Decode(rec.IPFSCID); err == nil {
				recorded[c.String()] = true
			}
		}
		res := verifyChain(ctx, VerifyOptions{Store: store, StoreName: "the repo"}, man, r)
		var chain []string
		for _, l := range res.Manifests {
			chain = append(chain, l.CID)
		}
		cands = append(cands, candidate{r, chain})
	}
	inOtherChain := func(c string) bool {
		for _, o := range cands {
			if o.c.String() != c && slices.Contains(o.chain, c) {
				return true
			}
		}
		return false
	}
	out := &ImportedChain{}
	var manifests []candidate
	for _, k := range cands {
		if recorded[k.c.String()] && !inOtherChain(k.c.String()) {
			out.Content = append(out.Content, k.c.String())
			continue
		}
		manifests = append(manifests, k)
	}
	cands = manifests
	var heads []candidate
	for _, k := range cands {
		if !inOtherChain(k.c.String()) {
			heads = append(heads, k)
		}
	}
	switch len(heads) {
	case 0:
	case 1:
		out.Tip, out.Chain = heads[0].c.String(), heads[0].chain
	default:
		for _, h := range heads {
			out.Forks = append(out.Forks, h.c.String())
		}
		slices.Sort(out.Forks)
	}
	return out, nil
}
