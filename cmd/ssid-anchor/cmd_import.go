package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

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
from the current head. An older manifest or a fork leaves the head alone.

Exit codes: 0 all imported, 1 a CAR was refused or could not be stored,
2 no CAR given, 3 repo missing or locked.`,
		Action: func(c *cli.Context) error {
			return runImport(c.Context, importOptions{CARs: c.Args().Slice()}, g)
		},
	}
}

// advanceChainHead moves the repo's chain head to the newest manifest among
// the imported roots. The first import on an audit box trusts the chain it
// was carried with (there is nothing to compare it with); later imports move
// the head only forward, so carrying in an old manifest cannot roll it back.
func advanceChainHead(ctx context.Context, n *node.Node, roots []string) (head, note string, err error) {
	cur, err := n.ChainHead()
	if err != nil {
		return "", "", err
	}
	chains := map[string][]string{}
	for _, r := range roots {
		c, err := cid.Decode(r)
		if err != nil {
			continue
		}
		chain, ok, err := anchor.StoredChain(ctx, n, c)
		if err != nil {
			return cur, "", fmt.Errorf("reading imported root %s: %w", r, err)
		}
		if ok {
			chains[chain[0]] = chain
		}
	}
	if len(chains) == 0 {
		return cur, "", nil
	}
	contains := func(chain []string, c string) bool { return slices.Contains(chain, c) }
	var tip string
	for t, chain := range chains {
		all := true
		for other := range chains {
			all = all && contains(chain, other)
		}
		if all {
			tip = t
		}
	}
	switch {
	case tip == "":
		return cur, "the imported manifests fork (none descends from all others); the chain head stays " + orNone(cur), nil
	case cur == "" || contains(chains[tip], cur):
		if tip != cur {
			if err := n.SetChainHead(tip); err != nil {
				return cur, "", err
			}
		}
		return tip, "", nil
	default:
		return cur, fmt.Sprintf("the imported manifest %s does not descend from this repo's chain head %s (older, or a fork); the head stays", tip, cur), nil
	}
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
	head, note, err := advanceChainHead(ctx, n, roots)
	if err != nil {
		return err
	}
	if g.JSON {
		if err := writeJSON(g.stdout, map[string]any{"imported": out, "chain_head": head, "chain_head_note": note}); err != nil {
			return err
		}
	} else {
		for _, e := range out {
			if e.Error != "" {
				fmt.Fprintf(g.stderr, "REFUSED %s: %s\n", e.Path, e.Error)
				continue
			}
			fmt.Fprintf(g.stderr, "pinned  %v from %s (%d blocks, %d bytes)\n", e.Roots, e.Path, e.Blocks, e.Bytes)
		}
		if note != "" {
			fmt.Fprintf(g.stderr, "warning: %s\n", note)
		} else if head != "" {
			fmt.Fprintf(g.stderr, "chain head %s\n", head)
		}
	}
	if failed > 0 {
		return failure{fmt.Sprintf("%d of %d CARs were not imported", failed, len(o.CARs))}
	}
	return nil
}
