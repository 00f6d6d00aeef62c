package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/node"
	"github.com/urfave/cli/v2"
)

type importOptions struct {
	CARs []string
}

func newImportCommand(g *globalOptions) *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "store CAR files in the repo and pin their roots",
		ArgsUsage: "CAR...",
		Description: `Checks every block of each CAR against its CID and that each root is a
complete DAG inside the CAR, then stores the blocks and pins the roots
recursively. A CAR failing a check is refused whole; the others are still
imported.

Manifests among the roots move the repo's chain head (what verify checks a
tree's manifest against) forward: on a repo with no head yet, to the newest
manifest of the carried chain; afterwards only to a manifest that descends
from the current head. A manifest is recognised by its shape (an anchors
list of records, statistics, manifest_version) and its chain, not by one
key: a governance JSON file that has an anchors key and is one of the
chain's records is content, not a manifest. An older manifest leaves the
head alone (a warning); manifests that fork, among themselves or from the
head, leave it too and fail the import.

Exit codes: 0 all imported, 1 a CAR was refused or could not be stored, or
the manifests fork, 2 no CAR given, 3 repo missing or locked.`,
		Action: func(c *cli.Context) error {
			return runImport(c.Context, importOptions{CARs: c.Args().Slice()}, g)
		},
	}
}

// chainImport is what an import did to the repo's chain head.
type chainImport struct {
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

// advanceChainHead moves the repo's chain head to the newest manifest among
// the imported roots (recognised by shape and chain: anchor.FindImportedChain).
// The first import on an audit box trusts the chain it was carried with
// (there is nothing to compare it with); later imports move the head only
// forward, so carrying in an old manifest cannot roll it back. Manifests
// that fork, among themselves or from the repo's head, leave the head and
// set Fork.
func advanceChainHead(ctx context.Context, n *node.Node, roots []string) (chainImport, error) {
	cur, err := n.ChainHead()
	if err != nil {
		return chainImport{}, err
	}
	out := chainImport{Head: cur}
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

type importedCAR struct {
	node.ImportResult
	Error string `json:"error,omitempty"`
}

func runImport(ctx context.Context, o importOptions, g *globalOptions) error {
	if len(o.CARs) == 0 {
		return usagef("import needs at least one CAR file")
	}
	n, release, err := g.openNode(ctx, node.OpenOptions{})
	if err != nil {
		return err
	}
	defer release()
	var out []importedCAR
	failed := 0
	for _, p := range o.CARs {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := n.ImportCAR(ctx, p, "ssid-anchor import "+filepath.Base(p))
		e := importedCAR{ImportResult: res}
		if err != nil {
			failed++
			e.Error = err.Error()
		}
		out = append(out, e)
	}
	var roots []string
	for _, e := range out {
		if e.Error == "" {
			roots = append(roots, e.Roots...)
		}
	}
	chain, err := advanceChainHead(ctx, n, roots)
	if err != nil {
		return err
	}
	if g.JSON {
		if err := writeJSON(g.stdout, struct {
			Imported []importedCAR `json:"imported"`
			chainImport
		}{out, chain}); err != nil {
			return err
		}
	} else {
		for _, e := range out {
			if e.Error != "" {
				fmt.Fprintf(g.stdout, "REFUSED %s: %s\n", e.Path, e.Error)
				continue
			}
			fmt.Fprintf(g.stdout, "pinned  %v from %s (%d blocks, %d bytes)\n", e.Roots, e.Path, e.Blocks, e.Bytes)
		}
		if len(chain.Content) > 0 {
			fmt.Fprintf(g.notices(), "note    %d anchored JSON file(s) with an anchors key are records of the chain, not manifests of it: %s\n", len(chain.Content), strings.Join(chain.Content, ", "))
		}
		switch {
		case chain.Fork:
			fmt.Fprintf(g.stdout, "FAILED  %s\n", chain.Note)
		case chain.Note != "":
			fmt.Fprintf(g.stderr, "warning: %s\n", chain.Note)
		case chain.Head != "":
			fmt.Fprintf(g.stdout, "chain head %s (%d manifest(s) in the imported chain)\n", chain.Head, len(chain.Chain))
		}
	}
	var what []string
	if failed > 0 {
		what = append(what, fmt.Sprintf("%d of %d CARs were not imported", failed, len(o.CARs)))
	}
	if chain.Fork {
		what = append(what, "the imported manifests fork, so the chain head was not moved")
	}
	if len(what) > 0 {
		return failure{strings.Join(what, "; ")}
	}
	return nil
}
