package ops

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/node"
)

// ImportOptions are `import`'s.
type ImportOptions struct {
	CARs []string
}

// ChainImport is what an import did to the repo's chain head.
type ChainImport struct {
	Head string `json:"chain_head"`
	Note string `json:"chain_head_note,omitempty"`
	// Chain are the manifests of the imported chain, newest first.
	Chain []string `json:"manifest_chain,omitempty"`
	// Content are imported JSON files shaped like a manifest (an anchors
	// key) that the chain records as anchored files.
	Content []string `json:"anchored_files_like_manifests,omitempty"`
	// Fork is set when the imported manifests fork, among themselves or
	// from the repo's head: import then fails.
	Fork bool `json:"fork"`
}

// ImportedCAR is one CAR import stored, or refused.
type ImportedCAR struct {
	node.ImportResult
	Error string `json:"error,omitempty"`
}

// ImportResult is what import stored and did to the chain head.
type ImportResult struct {
	Imported []ImportedCAR `json:"imported"`
	ChainImport
}

// Failed says why the import failed ("" when it did not): CARs refused
// or not stored, manifests that fork.
func (r *ImportResult) Failed() string {
	failed := 0
	for _, e := range r.Imported {
		if e.Error != "" {
			failed++
		}
	}
	var what []string
	if failed > 0 {
		what = append(what, fmt.Sprintf("%d of %d CARs were not imported", failed, len(r.Imported)))
	}
	if r.Fork {
		what = append(what, "the imported manifests fork, so the chain head was not moved")
	}
	return strings.Join(what, "; ")
}

// Import checks and stores each CAR, pins its roots, and moves the repo's
// chain head forward to the newest imported manifest (advanceChainHead).
func Import(ctx context.Context, e Env, o ImportOptions) (*ImportResult, error) {
	if len(o.CARs) == 0 {
		return nil, Usagef("import needs at least one CAR file")
	}
	n, release, err := e.open(ctx, node.OpenOptions{})
	if err != nil {
		return nil, err
	}
	defer release()
	res := &ImportResult{}
	for _, p := range o.CARs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r, err := n.ImportCAR(ctx, p, "ssid-anchor import "+filepath.Base(p))
		ic := ImportedCAR{ImportResult: r}
		if err != nil {
			ic.Error = err.Error()
		}
		res.Imported = append(res.Imported, ic)
	}
	var roots []string
	for _, ic := range res.Imported {
		if ic.Error == "" {
			roots = append(roots, ic.Roots...)
		}
	}
	res.ChainImport, err = advanceChainHead(ctx, n, roots)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// advanceChainHead moves the repo's chain head to the newest manifest among
// the imported roots (recognised by shape and chain: anchor.FindImportedChain).
// The first import on an audit box trusts the chain it was carried with
// (there is nothing to compare it with); later imports move the head only
// forward, so carrying in an old manifest cannot roll it back. Manifests
// that fork, among themselves or from the repo's head, leave the head and
// set Fork.
func advanceChainHead(ctx context.Context, n *node.Node, roots []string) (ChainImport, error) {
	cur, err := n.ChainHead()
	if err != nil {
		return ChainImport{}, err
	}
	out := ChainImport{Head: cur}
	var cids []cid.Cid
	for _, r := range roots {
		if c, err := cid.Decode(r); err == nil {
			cids = append(cids, c)
		}
	}
	ic, err := anchor.FindImportedChain(ctx, n, cids)
	if err != nil {
		return out, fmt.Errorf("reading the imported roots: %w", err)
	}
	out.Chain, out.Content = ic.Chain, ic.Content
	switch {
	case len(ic.Forks) > 0:
		out.Fork = true
		out.Note = fmt.Sprintf("the imported manifests fork: %s each descend from none of the others (two different histories were carried in); the chain head stays %s. Import the CARs of one export only",
			strings.Join(ic.Forks, ", "), orNone(cur))
	case ic.Tip == "":
	case cur == "" || slices.Contains(ic.Chain, cur):
		if ic.Tip != cur {
			if err := n.SetChainHead(ic.Tip); err != nil {
				return out, err
			}
		}
		out.Head = ic.Tip
	default:
		curChain, _, err := anchor.StoredChain(ctx, n, mustDecodeCID(cur))
		if err != nil {
			out.Fork = true
			out.Note = fmt.Sprintf("the imported manifest %s does not descend from this repo's chain head %s, whose manifest cannot be read here (%v); the head stays", ic.Tip, cur, err)
			break
		}
		if slices.Contains(curChain, ic.Tip) {
			out.Note = fmt.Sprintf("the imported manifest %s is older than this repo's chain head %s (an ancestor of it); the head stays", ic.Tip, cur)
			break
		}
		out.Fork = true
		out.Note = fmt.Sprintf("the imported manifest %s does not descend from this repo's chain head %s, nor is it one of its ancestors: the histories fork; the head stays. Find out which tree's manifest is the true one before importing it", ic.Tip, cur)
	}
	return out, nil
}

func mustDecodeCID(s string) cid.Cid {
	c, _ := cid.Decode(s)
	return c
}

func orNone(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}
