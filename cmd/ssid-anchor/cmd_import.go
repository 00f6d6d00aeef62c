package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
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

func runImport(ctx context.Context, o importOptions, g *globalOptions) error {
	res, err := ops.Import(ctx, g.opsEnv(), ops.ImportOptions{CARs: o.CARs})
	if err != nil {
		return err
	}
	chain := res.ChainImport
	if g.JSON {
		if err := writeJSON(g.stdout, res); err != nil {
			return err
		}
	} else {
		for _, e := range res.Imported {
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
	if msg := res.Failed(); msg != "" {
		return failure{msg}
	}
	return nil
}
