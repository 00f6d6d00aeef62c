package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/cheggaaa/pb/v3"
	"github.com/mattn/go-isatty"
	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/statcache"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
	"github.com/ssid/ssid-anchor/node"
	"github.com/urfave/cli/v2"
)

type anchorOptions struct {
	DryRun       bool
	CIDProfile   string
	GitHubOutput string
	Markdown     bool
	Reprocess    string
	// Remote names services that receive the run's new anchors;
	// Web3Storage adds the service named web3-storage.
	Remote      []string
	Web3Storage bool
}

func newAnchorCommand(g *globalOptions) *cli.Command {
	var o anchorOptions
	return &cli.Command{
		Name:  "anchor",
		Usage: "anchor the files new registry events call for: hash, add, pin, record",
		Description: `Reads the registry events log, selects the files each new event calls for
(anchor.rules), and for each file whose content is not yet recorded computes
its SHA-256 and adds it to the embedded IPFS node in one pass. The run's files
are pinned under one root; blocks and pins reach the disk before the manifest
is rewritten (atomically). The previous manifest is added too and linked as
previous_manifest_cid, so manifests form a hash chain.

Rule globs are doublestar patterns (** matches any depth); one walk of the
tree serves them all. A glob that selects nothing for an event is reported.
After fixing the rules, --reprocess SINCE selects files again for the events
from SINCE (a proof anchor printed by ` + "`ssid-anchor event`" + `) to the end of
the log, or for every event with --reprocess all; content already anchored is
still skipped.

Exit codes: 0 done (also when there was nothing new), 1 a file or the run
failed, 2 bad flag or config, 3 repo missing or locked, 130 interrupted.`,
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "dry-run", Destination: &o.DryRun, Usage: "compute hashes and CIDs, write nothing"},
			&cli.StringFlag{Name: "cid-profile", Destination: &o.CIDProfile, Usage: "kubo-default or unixfs-v1-2025 (default: anchor.cid_profile)"},
			&cli.StringFlag{Name: "github-output", TakesFile: true, Destination: &o.GitHubOutput, Usage: "append ipfs_cid=, manifest_cid=, anchored= lines to `FILE` ($GITHUB_OUTPUT)"},
			&cli.StringFlag{Name: "reprocess", Destination: &o.Reprocess, Usage: "select files again for the events since proof anchor `SINCE` (or all), after a rules change"},
			&cli.BoolFlag{Name: "markdown", Destination: &o.Markdown, Usage: "print a Proof-Anchor markdown block for a PR body on stdout"},
			&cli.StringSliceFlag{Name: "remote", Usage: "queue the new anchors for the remote pinning service `NAME` (repeatable; see `ssid-anchor pins`)"},
			&cli.BoolFlag{Name: "web3-storage", Destination: &o.Web3Storage, Usage: "queue the new anchors for the service named web3-storage (Storacha, which stopped taking uploads on 15 April 2026: move its requests with: ssid-anchor pins move --from web3-storage --to filecoin-pin)"},
			&cli.BoolFlag{Name: "verify", Usage: "verify instead of anchoring: the same as ssid-anchor verify, whose flags it takes (the seed's flag)"},
		}, hiddenFlags(verifyFlags())...),
		Action: func(c *cli.Context) error {
			if c.Bool("verify") {
				return runVerify(c.Context, verifyOptionsFrom(c), g)
			}
			if err := onlyWithVerify(c); err != nil {
				return err
			}
			o.Remote = c.StringSlice("remote")
			return runAnchor(c.Context, o, g)
		},
	}
}

func runAnchor(ctx context.Context, o anchorOptions, g *globalOptions) error {
	remotes, err := remoteTargets(g, o.Remote, o.Web3Storage)
	if err != nil {
		return err
	}
	res, err := execAnchor(ctx, o, g)
	var queued *ops.QueuedRemotePins
	var qerr error
	if res != nil && res.Rewritten && !res.DryRun {
		// Local anchoring is done and durable; queueing only writes the
		// queue file, it never waits on a service.
		t0 := time.Now()
		queued, qerr = ops.QueueRemotePins(g.opsEnv(), remotes, res.Records)
		g.log.Debug("remote pin requests queued", "took", time.Since(t0))
		if queued != nil && queued.Queued > 0 && g.daemon != nil {
			g.daemon.remotePinsQueued()
		}
		if qerr != nil {
			qerr = fmt.Errorf("anchored locally, but the remote pin requests could not be queued: %w", qerr)
		}
	}
	if res != nil {
		if perr := reportAnchor(g, o, res, queued); perr != nil && err == nil {
			err = perr
		}
	}
	if err != nil {
		return err
	}
	if qerr != nil {
		return qerr
	}
	if len(res.Failed) > 0 {
		return failure{fmt.Sprintf("%d of %d selected files could not be anchored", len(res.Failed), len(res.Failed)+len(res.Records)+len(res.Skipped))}
	}
	return nil
}

// checkReprocess accepts "all" or a proof anchor (64 hex digits).
func checkReprocess(v string) error {
	if v == "" || strings.EqualFold(v, "all") {
		return nil
	}
	if len(v) != 64 || strings.Trim(strings.ToLower(v), "0123456789abcdef") != "" {
		return usagef("--reprocess: want all or an event's proof anchor (64 hex digits, as `ssid-anchor event` prints it), got %q", v)
	}
	return nil
}

// execAnchor is one anchoring run without its report; `release` runs it as
// its anchor step.
func execAnchor(ctx context.Context, o anchorOptions, g *globalOptions) (*anchor.Result, error) {
	profile := g.cfg.Anchor.CIDProfile
	if o.CIDProfile != "" {
		profile = o.CIDProfile
	}
	params, err := node.ParamsFor(profile)
	if err != nil {
		return nil, usagef("--cid-profile: %v", err)
	}
	if err := checkReprocess(o.Reprocess); err != nil {
		return nil, err
	}
	root, err := tree.OpenRoot(g.Root)
	if err != nil {
		return nil, usagef("--root: %v", err)
	}
	defer root.Close()
	ro := anchor.RunOptions{
		Root: root, Paths: g.cfg.Paths, Config: g.cfg.Anchor, Params: params,
		Now: g.now, Log: g.log, Reprocess: o.Reprocess,
	}
	// Progress on stderr: bars on a terminal, a line every few seconds
	// otherwise, nothing with --quiet.
	if !g.Quiet {
		ro.OnFile = progressBars(g.stderr)
	}
	pl := g.newProgress("files", "read")
	defer pl.Close()
	if pl != nil {
		ro.OnFile, ro.OnFilesDone = pl.file, pl.count
		ro.OnWork = func(_, files int) { pl.setTotal(files) }
	}
	// Rules are checked before the node is opened: a config error costs
	// nothing and moves nothing.
	if _, err := anchor.NewSelector(root, g.cfg.Paths, g.cfg.Anchor.Rules); err != nil {
		return nil, usageError{err}
	}
	if !o.DryRun {
		// Inside the daemon, anchoring runs (commands and scheduled jobs)
		// queue behind each other instead of failing on the manifest lock.
		leave, err := g.enterAnchoring(ctx)
		if err != nil {
			return nil, err
		}
		defer leave()
		n, release, err := g.openNode(ctx, node.OpenOptions{})
		if err != nil {
			return nil, err
		}
		defer release()
		ro.Provider = "embedded-ipfs:" + n.PeerID()
		ro.OpenBatch = func(ctx context.Context) (anchor.Batch, error) { return n.NewBatch(ctx) }
		ro.OnCommit = n.SetChainHead
		ro.Signer = n
		ro.StatCache = filepath.Join(n.RepoPath(), statcache.FileName)
		if !g.served {
			// Process-wide, so a one-shot process only (as verify's).
			undo := setAnchorMemoryLimit(0, 0)
			defer undo()
			onWork := ro.OnWork
			ro.OnWork = func(records, files int) {
				setAnchorMemoryLimit(records, files)
				if onWork != nil {
					onWork(records, files)
				}
			}
		}
	}
	res, err := anchor.Run(ctx, ro)
	if res != nil && !res.DryRun && g.daemon != nil {
		// Announce the new anchors and name the new manifest under IPNS.
		g.daemon.afterAnchor(ctx, anchorResultOf(res), g.stderr)
	}
	switch {
	case errors.Is(err, anchor.ErrConfig), errors.Is(err, anchor.ErrReprocessNotFound):
		err = usageError{err}
	}
	return res, err
}

func reportAnchor(g *globalOptions, o anchorOptions, res *anchor.Result, queued *ops.QueuedRemotePins) error {
	if o.GitHubOutput != "" {
		if err := writeGitHubOutput(o.GitHubOutput, res); err != nil {
			return fmt.Errorf("--github-output: %w", err)
		}
	}
	if g.JSON {
		if err := writeJSON(g.stdout, struct {
			*anchor.Result
			RemotePins *ops.QueuedRemotePins `json:"remote_pins_queued,omitempty"`
			// LogHeader is the line of the log's "Registry events
			// initialized." header this run read and skipped.
			LogHeader int `json:"log_header_line,omitempty"`
		}{res, queued, res.LogRead().Header}); err != nil {
			return err
		}
	} else {
		// The summary is the result (stdout), unless --markdown makes the
		// markdown the result.
		w := g.stdout
		if o.Markdown {
			w = g.stderr
		}
		printAnchorHuman(w, g, res)
		if queued != nil {
			fmt.Fprintf(g.notices(), "queued %d remote pin requests for %s (`ssid-anchor pins` shows them; the daemon or `ssid-anchor pins --retry` pushes them)\n",
				queued.Queued, strings.Join(queued.Services, ", "))
		}
	}
	if o.Markdown {
		fmt.Fprint(g.stdout, proofAnchorMarkdown(res))
	}
	return nil
}

// printAnchorHuman prints the run's summary on w; notes and warnings go to
// stderr.
func printAnchorHuman(w io.Writer, g *globalOptions, res *anchor.Result) {
	if h := res.LogRead().Header; h > 0 {
		fmt.Fprintf(g.notices(), "note: registry log line %d: %q is the log's header, not an event; skipped\n", h, tree.InitLine)
	}
	for _, b := range res.BadBlocks {
		fmt.Fprintf(g.stderr, "warning: registry log %s: skipped\n", b)
	}
	verb := "anchored"
	if res.DryRun {
		verb = "would anchor"
	}
	if res.Reprocessed > 0 {
		fmt.Fprintf(w, "%d past registry events taken again (--reprocess)\n", res.Reprocessed)
	}
	fmt.Fprintf(w, "%d new registry events; %s %d files, %d unchanged, %d failed\n",
		res.NewEvents, verb, len(res.Records), len(res.Skipped), len(res.Failed))
	const maxUnmatched = 20
	for i, u := range res.Unmatched {
		if i == maxUnmatched {
			fmt.Fprintf(g.stderr, "warning: ... and %d more globs that matched nothing (--json lists them)\n", len(res.Unmatched)+res.UnmatchedOmitted-maxUnmatched)
			break
		}
		fmt.Fprintf(g.stderr, "warning: event %s (line %d): anchor.rules[%d] glob %q matched no file\n", u.Event, u.Line, u.Rule, u.Glob)
	}
	if len(res.Unmatched) <= maxUnmatched && res.UnmatchedOmitted > 0 {
		fmt.Fprintf(g.stderr, "warning: ... and %d more globs that matched nothing\n", res.UnmatchedOmitted)
	}
	for _, r := range res.Records {
		fmt.Fprintf(w, "  %s\n    sha256 %s\n    cid    %s\n    url    %s\n", r.FilePath, r.FileHash, r.IPFSCID, r.IPFSGatewayURL)
	}
	for _, f := range res.Failed {
		fmt.Fprintf(w, "  FAILED %s: %s\n", f.Path, f.Err)
	}
	if res.Rewritten {
		// Named as the manifest names them.
		fmt.Fprintf(w, "manifest %s (cid %s", res.ManifestPath, res.ManifestCID)
		if res.PreviousCID != "" {
			fmt.Fprintf(w, ", previous_manifest_cid %s", res.PreviousCID)
		}
		fmt.Fprintf(w, "), pinned under run root %s, signed by %s\n", res.RunRoot, res.SignedBy)
		if len(res.Checkpoints) > 0 {
			fmt.Fprintf(w, "checkpoint manifests written on the way (oldest first): %s\n", strings.Join(res.Checkpoints, ", "))
		}
	} else if !res.DryRun {
		fmt.Fprintln(w, "manifest unchanged")
	}
}

// primaryRecord is the record CI cares about: the release bundle if the run
// anchored one, else the last record.
func primaryRecord(res *anchor.Result) *anchor.Record {
	for i := range res.Records {
		if strings.HasSuffix(res.Records[i].FilePath, ".zip") {
			return &res.Records[i]
		}
	}
	if len(res.Records) > 0 {
		return &res.Records[len(res.Records)-1]
	}
	return nil
}

func writeGitHubOutput(path string, res *anchor.Result) error {
	cidv := "none"
	if r := primaryRecord(res); r != nil {
		cidv = r.IPFSCID
	}
	mc := res.ManifestCID
	if mc == "" {
		mc = "none"
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, werr := fmt.Fprintf(f, "ipfs_cid=%s\nmanifest_cid=%s\nanchored=%d\n", cidv, mc, len(res.Records))
	if err := f.Close(); werr == nil {
		werr = err
	}
	return werr
}

func proofAnchorMarkdown(res *anchor.Result) string {
	var b strings.Builder
	b.WriteString("### Proof-Anchor\n\n")
	if len(res.Records) == 0 {
		b.WriteString("No new content was anchored in this run.\n")
		return b.String()
	}
	if r := primaryRecord(res); r != nil && strings.HasSuffix(r.FilePath, ".zip") {
		fmt.Fprintf(&b, "- **Bundle:** `%s`\n- **Bundle SHA-256:** `%s`\n- **IPFS CID:** `%s`\n- **Gateway:** %s\n\n", r.FilePath, r.FileHash, r.IPFSCID, r.IPFSGatewayURL)
	}
	b.WriteString("| File | SHA-256 | CID | Gateway |\n|---|---|---|---|\n")
	for _, r := range res.Records {
		fmt.Fprintf(&b, "| `%s` | `%s` | `%s` | %s |\n", r.FilePath, r.FileHash, r.IPFSCID, r.IPFSGatewayURL)
	}
	if res.ManifestCID != "" {
		fmt.Fprintf(&b, "\nManifest CID: `%s`", res.ManifestCID)
		if res.PreviousCID != "" {
			fmt.Fprintf(&b, " (previous_manifest_cid: `%s`)", res.PreviousCID)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// progressBars shows kubo's progress bar for large files when stderr is a
// terminal.
func progressBars(w io.Writer) func(string, int64) func(int) {
	f, ok := w.(*os.File)
	if !ok || !isatty.IsTerminal(f.Fd()) {
		return nil
	}
	return func(path string, size int64) func(int) {
		if size < 64<<20 {
			return nil
		}
		bar := pb.New64(size).Set(pb.Bytes, true).SetWriter(w).Set("prefix", path+" ")
		bar.Start()
		var done int64
		return func(n int) {
			bar.Add(n)
			done += int64(n)
			if done >= size {
				bar.Finish()
			}
		}
	}
}

// setAnchorMemoryLimit sets the soft memory limit of a one-shot anchoring
// run sized for a manifest of records and files selected files, and
// returns the undo. Go hands freed heap pages back to the kernel only
// slowly (its scavenger paces itself to about 1 % of a core): without a
// limit a run over 16,500 files kept 20-30 MB of freed pages resident at
// its commit, above what its live data needed; at the limit the scavenger
// returns them and collections come sooner. The limit is well above the
// live data (about 1.2 KiB per record and file at the peak, measured, plus
// the node's own 15-20 MiB), so the collector never runs back to back:
// 24 MiB + 2 KiB per record and file, at least 64 MiB (measured over the
// 16,500-file tree: peak RSS 124 -> 104 MB at the same CPU time).
func setAnchorMemoryLimit(records, files int) func() {
	limit := max(int64(64<<20), int64(24<<20)+int64(records+files)*2048)
	old := debug.SetMemoryLimit(limit)
	return func() { debug.SetMemoryLimit(old) }
}
