package main

import (
	"context"
	"fmt"
	"path/filepath"

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

Exit codes: 0 all imported, 1 a CAR was refused or could not be stored,
2 no CAR given, 3 repo missing or locked.`,
		Action: func(c *cli.Context) error {
			return runImport(c.Context, importOptions{CARs: c.Args().Slice()}, g)
		},
	}
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
	if g.JSON {
		if err := writeJSON(g.stdout, map[string]any{"imported": out}); err != nil {
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
	}
	if failed > 0 {
		return failure{fmt.Sprintf("%d of %d CARs were not imported", failed, len(o.CARs))}
	}
	return nil
}
