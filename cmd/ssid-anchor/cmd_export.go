package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/tree"
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

// exportedCAR is one line of export's output.
type exportedCAR struct {
	File string `json:"file"`
	What string `json:"what"`
	node.ExportResult
	Error string `json:"error,omitempty"`
}

func runExport(ctx context.Context, o exportOptions, g *globalOptions) error {
	manPath := o.Manifest
	if manPath == "" {
		root, err := tree.OpenRoot(g.Root)
		if err != nil {
			return usagef("--root: %v", err)
		}
		defer root.Close()
		if err := tree.CheckRelative(g.cfg.Paths.Manifest); err != nil {
			return usagef("paths.manifest: %v", err)
		}
		// The tree's manifest is read once, through the root (kernel-
		// confined, size-capped, parsed), and copied into the export directory; the plan is made
		// from that copy, so the CARs and the copy always agree. Its parse
		// is not kept: it takes several times the manifest's size.
		b, err := anchor.ReadManifestIn(root, g.cfg.Paths.Manifest)
		if errors.Is(err, tree.ErrOutsideRoot) {
			return usagef("paths.manifest: %v", err)
		}
		if err != nil {
			return fmt.Errorf("reading the manifest %s: %w", g.cfg.Paths.Manifest, err)
		}
		if err := os.MkdirAll(o.Dir, 0o755); err != nil {
			return fmt.Errorf("--car: %w", err)
		}
		manPath = filepath.Join(o.Dir, path.Base(g.cfg.Paths.Manifest))
		if err := tree.WriteFileAtomic(manPath, b, 0o644); err != nil {
			return fmt.Errorf("copying the manifest into %s: %w", o.Dir, err)
		}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return fmt.Errorf("--car: %w", err)
	}
	n, release, err := g.openNode(ctx, node.OpenOptions{})
	if err != nil {
		return err
	}
	defer release()
	plan, err := anchor.PlanExport(ctx, n, manPath)
	if err != nil {
		return err
	}
	type item struct {
		c    cid.Cid
		what string
	}
	var items []item
	for _, a := range plan.Anchors {
		items = append(items, item{a.CID, "anchor " + a.FilePath})
	}
	if plan.ManifestStored {
		items = append(items, item{plan.Manifest, "manifest"})
	}
	for _, c := range plan.Chain {
		items = append(items, item{c, "previous manifest"})
	}
	targets := make([]node.ExportTarget, len(items))
	for i, it := range items {
		targets[i] = node.ExportTarget{Root: it.c, Path: filepath.Join(o.Dir, it.c.String()+".car")}
	}
	// Progress lines on a stderr that is not a terminal (none with --quiet).
	pl := g.newProgress("CARs", "written")
	defer pl.Close()
	var onCAR func(int, node.ExportResult, error)
	if pl != nil {
		pl.setTotal(len(targets))
		done, failed := 0, 0
		onCAR = func(_ int, r node.ExportResult, err error) {
			done++
			if err != nil {
				failed++
			}
			pl.read(r.Bytes)
			pl.count(done, failed)
		}
	}
	// One flush for all CARs instead of an fsync each (see ExportCARFiles).
	results, errs, err := n.ExportCARFilesFunc(ctx, targets, onCAR)
	if err != nil {
		return err
	}
	out := make([]exportedCAR, 0, len(items))
	failed := 0
	for i, it := range items {
		e := exportedCAR{File: targets[i].Path, What: it.what, ExportResult: results[i]}
		if errs[i] != nil {
			failed++
			e.Error = errs[i].Error()
		}
		out = append(out, e)
	}
	// Which CARs hold the manifest chain, newest first: import recognises
	// manifests by their shape and chain, and this says it outright.
	var chainCARs []string
	for i, it := range items {
		if it.what == "manifest" || it.what == "previous manifest" {
			chainCARs = append(chainCARs, targets[i].Path)
		}
	}
	manCopy := filepath.Join(o.Dir, filepath.Base(manPath))
	if err := copyFile(manPath, manCopy); err != nil {
		return fmt.Errorf("copying the manifest into %s: %w", o.Dir, err)
	}
	if g.JSON {
		if err := writeJSON(g.stdout, map[string]any{"dir": o.Dir, "manifest": manCopy, "manifest_cid": plan.Manifest.String(), "cars": out, "manifest_chain": chainCARs, "chain_problems": plan.ChainProblems}); err != nil {
			return err
		}
	} else {
		for _, e := range out {
			if e.Error != "" {
				fmt.Fprintf(g.stdout, "FAILED  %s  %s: %s\n", e.Root, e.What, e.Error)
				continue
			}
			fmt.Fprintf(g.stdout, "wrote   %s  %s (%d blocks, %d bytes)\n", e.File, e.What, e.Blocks, e.Bytes)
		}
		for _, p := range plan.ChainProblems {
			fmt.Fprintf(g.stdout, "chain   %s\n", p)
		}
		fmt.Fprintf(g.stdout, "the manifest chain is in %d CAR(s): %s\n", len(chainCARs), strings.Join(chainCARs, " "))
		fmt.Fprintf(g.stdout, "manifest copied to %s\n", manCopy)
		fmt.Fprintf(g.notices(), "on the audit machine: ssid-anchor verify --manifest %s --car %s\n", manCopy, filepath.Join(o.Dir, "*.car"))
	}
	if failed > 0 || len(plan.ChainProblems) > 0 {
		var what []string
		if failed > 0 {
			what = append(what, fmt.Sprintf("%d of %d CARs could not be written (their blocks are not in the repo; run verify to see why)", failed, len(items)))
		}
		if len(plan.ChainProblems) > 0 {
			what = append(what, "the manifest chain could not be followed to its start")
		}
		return failure{"export incomplete: " + strings.Join(what, "; ")}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if sa, err1 := filepath.Abs(src); err1 == nil {
		if da, err2 := filepath.Abs(dst); err2 == nil && sa == da {
			return nil
		}
	}
	b, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	return tree.WriteFileAtomic(dst, b, 0o644)
}
