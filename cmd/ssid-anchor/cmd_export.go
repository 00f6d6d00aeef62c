package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
	"github.com/ssid/ssid-anchor/node"
	"github.com/urfave/cli/v2"
)

type exportOptions struct {
	Dir      string
	Manifest string
}

func newExportCommand(g *globalOptions) *cli.Command {
	var o exportOptions
	return &cli.Command{
		Name:  "export",
		Usage: "write one CAR per anchor and per manifest of the chain, for an air-gapped machine",
		Description: `Writes <cid>.car (CARv1, one root, blocks depth first) for every record's CID,
for the manifest itself and for every previous manifest of the chain, and a
copy of the manifest file, into DIR. Carry DIR to the audit machine and run
  ssid-anchor verify --manifest DIR/<manifest>.json --car DIR/*.car
or pin everything there with ssid-anchor import DIR/*.car.

Exit codes: 0 everything written, 1 an anchor or a manifest could not be
exported (its blocks are missing), 2 bad flag, 3 repo missing or locked.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "car", Required: true, TakesFile: true, Destination: &o.Dir, Usage: "write the CARs into `DIR` (created if needed)"},
			&cli.StringFlag{Name: "manifest", TakesFile: true, Destination: &o.Manifest, Usage: "manifest `FILE` (default: paths.manifest under --root)"},
		},
		Action: func(c *cli.Context) error { return runExport(c.Context, o, g) },
	}
}

func runExport(ctx context.Context, o exportOptions, g *globalOptions) error {
	// Progress lines on a stderr that is not a terminal (none with
	// --quiet), started once the CARs to write are known.
	var pl *progressLines
	defer func() { pl.Close() }()
	done, failed := 0, 0
	res, err := ops.Export(ctx, g.opsEnv(), ops.ExportOptions{
		Dir: o.Dir, Manifest: o.Manifest,
		OnTotal: func(n int) {
			pl = g.newProgress("CARs", "written")
			pl.setTotal(n)
		},
		OnCAR: func(_ int, r node.ExportResult, err error) {
			if pl == nil {
				return
			}
			done++
			if err != nil {
				failed++
			}
			pl.read(r.Bytes)
			pl.count(done, failed)
		},
	})
	if err != nil {
		return err
	}
	if g.JSON {
		if err := writeJSON(g.stdout, map[string]any{"dir": res.Dir, "manifest": res.Manifest, "manifest_cid": res.ManifestCID, "cars": res.CARs, "manifest_chain": res.ManifestChain, "chain_problems": res.ChainProblems}); err != nil {
			return err
		}
	} else {
		for _, e := range res.CARs {
			if e.Error != "" {
				fmt.Fprintf(g.stdout, "FAILED  %s  %s: %s\n", e.Root, e.What, e.Error)
				continue
			}
			fmt.Fprintf(g.stdout, "wrote   %s  %s (%d blocks, %d bytes)\n", e.File, e.What, e.Blocks, e.Bytes)
		}
		for _, p := range res.ChainProblems {
			fmt.Fprintf(g.stdout, "chain   %s\n", p)
		}
		fmt.Fprintf(g.stdout, "the manifest chain is in %d CAR(s): %s\n", len(res.ManifestChain), strings.Join(res.ManifestChain, " "))
		fmt.Fprintf(g.stdout, "manifest copied to %s\n", res.Manifest)
		fmt.Fprintf(g.notices(), "on the audit machine: ssid-anchor verify --manifest %s --car %s\n", res.Manifest, filepath.Join(o.Dir, "*.car"))
	}
	if msg := res.Incomplete(); msg != "" {
		return failure{msg}
	}
	return nil
}
