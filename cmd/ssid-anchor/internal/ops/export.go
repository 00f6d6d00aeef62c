package ops

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
)

// ExportOptions are `export`'s.
type ExportOptions struct {
	Dir      string
	Manifest string // default: paths.manifest under the root
	// OnTotal, when set, is told how many CARs will be written, before
	// the first; OnCAR each CAR as it is written (or fails): the
	// command's progress lines.
	OnTotal func(n int)
	OnCAR   func(i int, r node.ExportResult, err error)
}

// ExportedCAR is one CAR export wrote, or could not (one line of export's
// output).
type ExportedCAR struct {
	File string `json:"file"`
	What string `json:"what"`
	node.ExportResult
	Error string `json:"error,omitempty"`
}

// ExportResult is what export wrote into Dir.
type ExportResult struct {
	Dir         string
	Manifest    string // the copy in Dir
	ManifestCID string
	CARs        []ExportedCAR
	// ManifestChain are the CARs that hold the manifest chain, newest
	// first: import recognises manifests by their shape and chain, and
	// this says it outright.
	ManifestChain []string
	ChainProblems []string
}

// Incomplete says what is missing from the export ("" when nothing is):
// CARs whose blocks are not in the repo, a chain that could not be
// followed to its start.
func (r *ExportResult) Incomplete() string {
	failed := 0
	for _, c := range r.CARs {
		if c.Error != "" {
			failed++
		}
	}
	var what []string
	if failed > 0 {
		what = append(what, fmt.Sprintf("%d of %d CARs could not be written (their blocks are not in the repo; run verify to see why)", failed, len(r.CARs)))
	}
	if len(r.ChainProblems) > 0 {
		what = append(what, "the manifest chain could not be followed to its start")
	}
	if len(what) == 0 {
		return ""
	}
	return "export incomplete: " + strings.Join(what, "; ")
}

// Export writes one CAR per anchor and per manifest of the chain, and a
// copy of the manifest, into o.Dir, for an air-gapped machine.
func Export(ctx context.Context, e Env, o ExportOptions) (*ExportResult, error) {
	manPath := o.Manifest
	if manPath == "" {
		root, err := tree.OpenRoot(e.Root)
		if err != nil {
			return nil, Usagef("--root: %v", err)
		}
		defer root.Close()
		if err := tree.CheckRelative(e.Config.Paths.Manifest); err != nil {
			return nil, Usagef("paths.manifest: %v", err)
		}
		// The tree's manifest is read once, through the root (kernel-
		// confined, size-capped, parsed), and copied into the export directory; the plan is made
		// from that copy, so the CARs and the copy always agree. Its parse
		// is not kept: it takes several times the manifest's size.
		b, err := anchor.ReadManifestIn(root, e.Config.Paths.Manifest)
		if errors.Is(err, tree.ErrOutsideRoot) {
			return nil, Usagef("paths.manifest: %v", err)
		}
		if err != nil {
			return nil, fmt.Errorf("reading the manifest %s: %w", e.Config.Paths.Manifest, err)
		}
		if err := os.MkdirAll(o.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("--car: %w", err)
		}
		manPath = filepath.Join(o.Dir, path.Base(e.Config.Paths.Manifest))
		if err := tree.WriteFileAtomic(manPath, b, 0o644); err != nil {
			return nil, fmt.Errorf("copying the manifest into %s: %w", o.Dir, err)
		}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("--car: %w", err)
	}
	n, release, err := e.open(ctx, node.OpenOptions{})
	if err != nil {
		return nil, err
	}
	defer release()
	plan, err := anchor.PlanExport(ctx, n, manPath)
	if err != nil {
		return nil, err
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
	if o.OnTotal != nil {
		o.OnTotal(len(targets))
	}
	// One flush for all CARs instead of an fsync each (see ExportCARFiles).
	results, errs, err := n.ExportCARFilesFunc(ctx, targets, o.OnCAR)
	if err != nil {
		return nil, err
	}
	res := &ExportResult{Dir: o.Dir, ManifestCID: plan.Manifest.String(), CARs: make([]ExportedCAR, 0, len(items)), ChainProblems: plan.ChainProblems}
	for i, it := range items {
		ec := ExportedCAR{File: targets[i].Path, What: it.what, ExportResult: results[i]}
		if errs[i] != nil {
			ec.Error = errs[i].Error()
		}
		res.CARs = append(res.CARs, ec)
		if it.what == "manifest" || it.what == "previous manifest" {
			res.ManifestChain = append(res.ManifestChain, targets[i].Path)
		}
	}
	res.Manifest = filepath.Join(o.Dir, filepath.Base(manPath))
	if err := copyFile(manPath, res.Manifest); err != nil {
		return nil, fmt.Errorf("copying the manifest into %s: %w", o.Dir, err)
	}
	return res, nil
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
