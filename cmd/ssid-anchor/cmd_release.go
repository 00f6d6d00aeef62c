package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/pinning"
	"github.com/ssid/ssid-anchor/anchor/release"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
	"github.com/ssid/ssid-anchor/node"
	"github.com/ssid/ssid-anchor/telemetry"
	"github.com/urfave/cli/v2"
)

type releaseOptions struct {
	Quarter      string
	GitHubOutput string
	Markdown     bool
	// Remote names services that receive the bundle and the release
	// manifest, besides those marked auto; Web3Storage adds web3-storage.
	Remote      []string
	Web3Storage bool
	// RemoteWait bounds how long a one-shot run stays online for the
	// services' delegates to fetch (the daemon is online anyway).
	RemoteWait time.Duration
}

func newReleaseCommand(g *globalOptions) *cli.Command {
	var o releaseOptions
	return &cli.Command{
		Name:  "release",
		Usage: "the quarterly pipeline: bundle, anchor, remote pin, telemetry notice",
		Description: `Runs the quarterly release as one command, each step reported:

  bundle      build the reproducible bundle, its manifest and release event
              (see ssid-anchor bundle)
  anchor      anchor the new events' files (the bundle and its manifest) on
              the embedded node, then write external_anchors.ipfs into the
              release manifest
  remote-pin  queue the bundle and the release manifest for the remote
              pinning services marked "auto" and those named by --remote,
              then push them once: the daemon drains on its online node;
              a one-shot run goes online for up to --remote-wait
  telemetry   one telemetry check: sends the release notice (event filter
              notify_on_release) and any alert that is due

A failed step fails the command, after the steps that can still run (the
anchor step needs the bundle; telemetry always runs). Inside the daemon this
is the quarterly job.

  --github-output FILE  append quarter=, version=, bundle=, bundle_hash=,
                        ipfs_cid=, gateway_url=, event_proof_anchor=, status=
  --markdown            print the Proof-Anchor pull request body on stdout

Exit codes: 0 every step ok or skipped, 1 a step failed, 2 bad flag or config,
3 repo missing or locked.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "quarter", Destination: &o.Quarter, Usage: "quarter `YYYY-QN` (default: the last quarter that ended, UTC)"},
			&cli.StringFlag{Name: "github-output", Destination: &o.GitHubOutput, Usage: "append the release's outputs to `FILE` ($GITHUB_OUTPUT)"},
			&cli.BoolFlag{Name: "markdown", Destination: &o.Markdown, Usage: "print the Proof-Anchor markdown for a PR body on stdout"},
			&cli.StringSliceFlag{Name: "remote", Usage: "pin the bundle and release manifest on the remote pinning service `NAME` too (repeatable; see `ssid-anchor pins`)"},
			&cli.BoolFlag{Name: "web3-storage", Destination: &o.Web3Storage, Usage: "pin the bundle and release manifest on the service named web3-storage (Storacha, which stopped taking uploads on 15 April 2026; see `ssid-anchor pins move`) too"},
			&cli.DurationFlag{Name: "remote-wait", Value: 2 * time.Minute, Destination: &o.RemoteWait, Usage: "without a daemon, stay online up to `DURATION` while the remote services fetch"},
		},
		Action: func(c *cli.Context) error {
			o.Remote = c.StringSlice("remote")
			return runRelease(c.Context, o, g)
		},
	}
}

// Step results.
const (
	stepOK      = "ok"
	stepSkipped = "skipped"
	stepFailed  = "failed"
	stepNotRun  = "not_run"
)

// stepResult is one step of the pipeline as reported.
type stepResult struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Summary string `json:"summary"`
	Error   string `json:"error,omitempty"`
	err     error
}

// releaseReport is what `release --json` prints.
type releaseReport struct {
	Quarter   string              `json:"quarter"`
	OK        bool                `json:"ok"`
	Steps     []*stepResult       `json:"steps"`
	Bundle    *release.Result     `json:"bundle,omitempty"`
	IPFS      *release.IPFSAnchor `json:"ipfs,omitempty"`
	Anchor    *anchor.Result      `json:"anchor,omitempty"`
	Telemetry *telemetry.Report   `json:"telemetry,omitempty"`
}

// releaseStep is one named step. needs names the steps that must have
// succeeded (ok) for it to run.
type releaseStep struct {
	name  string
	needs []string
	run   func(ctx context.Context, rr *releaseRun) (status, summary string, err error)
}

// releaseRun carries one pipeline run's state between steps.
type releaseRun struct {
	o       releaseOptions
	g       *globalOptions
	q       release.Quarter
	rep     *releaseReport
	remotes []pinning.Service
}

// releaseSteps is the quarterly pipeline (SPEC 4.5), in order.
func releaseSteps() []releaseStep {
	return []releaseStep{
		{name: "bundle", run: releaseBundleStep},
		{name: "anchor", needs: []string{"bundle"}, run: releaseAnchorStep},
		{name: "remote-pin", needs: []string{"anchor"}, run: releaseRemotePinStep},
		{name: "telemetry", run: releaseTelemetryStep},
	}
}

// runRelease runs the quarterly pipeline and reports every step. The
// daemon's quarterly job calls it (with g.shared set, so the anchor step
// uses the daemon's node).
func runRelease(ctx context.Context, o releaseOptions, g *globalOptions) error {
	if o.Markdown && g.JSON {
		return usagef("--markdown prints markdown on stdout and --json prints JSON there; choose one")
	}
	q, err := ops.ReleaseQuarter(o.Quarter, g.now())
	if err != nil {
		return err
	}
	if _, err := ops.SourceDateEpoch(os.Getenv); err != nil {
		return err
	}
	// A misspelt --remote is a usage error before anything is built.
	remotes, err := remoteTargets(g, o.Remote, o.Web3Storage)
	if err != nil {
		return err
	}
	if o.RemoteWait <= 0 {
		o.RemoteWait = 2 * time.Minute
	}
	rr := &releaseRun{o: o, g: g, q: q, rep: &releaseReport{Quarter: q.String(), OK: true}, remotes: remotes}
	status := map[string]string{}
	var firstErr error
	for _, st := range releaseSteps() {
		r := &stepResult{Name: st.name}
		rr.rep.Steps = append(rr.rep.Steps, r)
		if ctx.Err() != nil {
			r.Status, r.Summary = stepNotRun, "interrupted"
			status[st.name] = r.Status
			continue
		}
		var blocked []string
		for _, n := range st.needs {
			if status[n] != stepOK {
				blocked = append(blocked, n)
			}
		}
		if len(blocked) > 0 {
			r.Status, r.Summary = stepNotRun, "needs "+strings.Join(blocked, ", ")
		} else {
			r.Status, r.Summary, r.err = st.run(ctx, rr)
			if r.err != nil {
				r.Status, r.Error = stepFailed, r.err.Error()
				if firstErr == nil {
					firstErr = fmt.Errorf("release %s: step %s: %w", q, st.name, r.err)
				}
			}
		}
		status[st.name] = r.Status
		if !g.JSON {
			// The steps are the result, unless --markdown makes the
			// markdown the result.
			w := g.stdout
			if o.Markdown {
				w = g.stderr
			}
			printStep(w, r)
		}
	}
	rr.rep.OK = firstErr == nil
	if err := ctx.Err(); err != nil {
		return err
	}
	if o.GitHubOutput != "" {
		if err := writeReleaseGitHubOutput(o.GitHubOutput, rr.rep); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("--github-output: %w", err)
		}
	}
	if g.JSON {
		if err := writeJSON(g.stdout, rr.rep); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if o.Markdown {
		fmt.Fprint(g.stdout, releaseMarkdown(rr.rep, g.cfg.Anchor.CIDProfile))
	}
	return firstErr
}

func printStep(w io.Writer, r *stepResult) {
	fmt.Fprintf(w, "[%s] %s: %s", r.Status, r.Name, r.Summary)
	if r.Error != "" {
		fmt.Fprintf(w, ": %s", r.Error)
	}
	fmt.Fprintln(w)
}

func releaseBundleStep(ctx context.Context, rr *releaseRun) (string, string, error) {
	res, err := buildBundle(ctx, bundleOptions{Quarter: rr.q.String()}, rr.g)
	if err != nil {
		return stepFailed, "no bundle", err
	}
	rr.rep.Bundle = res
	for _, w := range res.Warnings {
		rr.g.log.Warn("bundle", "warning", w)
	}
	state := "built"
	if len(res.Written) == 0 {
		state = "up to date"
	}
	return stepOK, fmt.Sprintf("%s %s, sha256 %s (%s)", state, res.Bundle, res.Hash, res.Version), nil
}

// releaseAnchorStep anchors the release. The bundle's CID is computed
// first and written into the release manifest's external_anchors.ipfs, so
// the manifest that the anchoring run then adds (the release event selects
// the quarter's bundle and manifest) already names its bundle's CID and
// stays verifiable; writing the CID afterwards would change an anchored
// file. The run's record of the bundle must then carry that CID; if not,
// the manifest says pinned: false and the step fails.
func releaseAnchorStep(ctx context.Context, rr *releaseRun) (string, string, error) {
	g, b := rr.g, rr.rep.Bundle
	root, err := tree.OpenRoot(g.Root)
	if err != nil {
		return stepFailed, "", err
	}
	params, err := node.ParamsFor(g.cfg.Anchor.CIDProfile)
	if err != nil {
		return stepFailed, "", usagef("anchor.cid_profile: %v", err)
	}
	f, err := root.Open(b.Bundle)
	if err != nil {
		return stepFailed, "", err
	}
	c, err := node.ComputeCID(f, params, nil)
	f.Close()
	if err != nil {
		return stepFailed, "", fmt.Errorf("computing the CID of %s: %w", b.Bundle, err)
	}
	a := release.IPFSAnchor{CID: c.String(), GatewayURL: g.cfg.Anchor.GatewayURL(c.String()), Pinned: true,
		PinnedAt: g.now().UTC().Format(time.RFC3339)}
	// A release manifest that an earlier `anchor` run already recorded
	// (bundle, then anchor, then release) is left as it is: changing it
	// would fail verify. Its bundle's CID is in the anchor manifest.
	frozen := false
	if man, _, err := anchor.LoadManifestIn(root, g.cfg.Paths.Manifest); err == nil {
		if sum, err := release.FileSHA256(root, b.Manifest); err == nil && man.Has(b.Manifest, sum) {
			frozen = true
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return stepFailed, "", err
	}
	record := func(a release.IPFSAnchor) error {
		if frozen {
			return nil
		}
		_, err := release.RecordIPFS(root, g.cfg.Paths, rr.q, a)
		return err
	}
	if err := record(a); err != nil {
		return stepFailed, "release manifest not updated; nothing anchored", err
	}
	res, err := execAnchor(ctx, anchorOptions{}, g)
	if res != nil {
		rr.rep.Anchor = res
	}
	unpinned := func(summary string, cause error) (string, string, error) {
		a.Pinned, a.PinnedAt = false, ""
		if err := record(a); err != nil {
			cause = fmt.Errorf("%w; and marking the release manifest unpinned: %w", cause, err)
		}
		return stepFailed, summary, cause
	}
	if err != nil {
		return unpinned("anchoring failed", err)
	}
	man, _, err := anchor.LoadManifestIn(root, g.cfg.Paths.Manifest)
	if err != nil {
		return unpinned("", err)
	}
	var rec *anchor.Record
	for i := range man.Records {
		if r := &man.Records[i]; r.FilePath == b.Bundle && r.FileHash == b.Hash {
			rec = r
		}
	}
	if rec == nil {
		msg := "the anchor manifest has no record of the bundle"
		for _, f := range res.Failed {
			if f.Path == b.Bundle {
				msg += ": " + f.Err
			}
		}
		return unpinned("bundle not anchored", errors.New(msg+"; run `ssid-anchor release` again (failed files are selected again)"))
	}
	if rec.IPFSCID != a.CID || !rec.Pinned {
		return unpinned("bundle anchored under another CID", fmt.Errorf("the anchor record of %s has cid %s (pinned %v), computed %s; was anchor.cid_profile changed since it was anchored?", b.Bundle, rec.IPFSCID, rec.Pinned, a.CID))
	}
	rr.rep.IPFS = &a
	summary := fmt.Sprintf("%d files anchored; bundle cid %s (%s)", len(res.Records), a.CID, a.GatewayURL)
	if frozen {
		summary += "; " + b.Manifest + " was anchored before this run and is left unchanged (no external_anchors.ipfs written)"
	}
	return stepOK, summary, nil
}

// releaseRemotePinStep queues the bundle and the release manifest for
// every remote service (auto, or named by --remote) and pushes them once:
// inside the daemon on its online node (the remote-pins job follows up
// what is still pinning), in a one-shot run with the node online for up to
// --remote-wait, as `pins --retry` does. It reports each request's state.
func releaseRemotePinStep(ctx context.Context, rr *releaseRun) (string, string, error) {
	g, b := rr.g, rr.rep.Bundle
	if len(rr.remotes) == 0 {
		return stepSkipped, "no remote pinning service configured (mark one \"auto\": true in remote_pinning.services, or pass --remote NAME)", nil
	}
	root, err := tree.OpenRoot(g.Root)
	if err != nil {
		return stepFailed, "", err
	}
	man, _, err := anchor.LoadManifestIn(root, g.cfg.Paths.Manifest)
	root.Close()
	if err != nil {
		return stepFailed, "", err
	}
	// The latest records of the bundle and of the release manifest: the
	// anchor step made sure the bundle's exists and is pinned locally.
	var recs []anchor.Record
	for _, p := range []string{b.Bundle, b.Manifest} {
		var rec *anchor.Record
		for i := range man.Records {
			if r := &man.Records[i]; r.FilePath == p && r.IPFSCID != "" && r.Pinned {
				rec = r
			}
		}
		if rec == nil {
			return stepFailed, "", fmt.Errorf("the anchor manifest has no pinned record of %s to pin remotely; run `ssid-anchor anchor` first", p)
		}
		recs = append(recs, *rec)
	}
	if _, err := ops.QueueRemotePins(g.opsEnv(), rr.remotes, recs); err != nil {
		return stepFailed, "", fmt.Errorf("queueing the remote pin requests: %w", err)
	}
	var drainErr error
	if d := g.daemon; d != nil {
		dr, err := ops.NewDrainer(g.opsEnv(), d.node)
		if err != nil {
			return stepFailed, "", err
		}
		_, drainErr = dr.Drain(ctx, pinning.DrainOptions{})
		// The remote-pins job follows up (or does the push when another
		// drain held the queue).
		d.remotePinsQueued()
		if errors.Is(drainErr, pinning.ErrBusy) {
			drainErr = nil
		}
	} else {
		n, release, err := g.openNode(ctx, node.OpenOptions{Online: true, Swarm: g.cfg.Node.Swarm, Peering: g.cfg.Node.Peering})
		if err != nil {
			return stepFailed, "queued; the daemon or `ssid-anchor pins --retry` pushes them", err
		}
		dr, err := ops.NewDrainer(g.opsEnv(), n)
		if err != nil {
			release()
			return stepFailed, "", err
		}
		_, drainErr = dr.Settle(ctx, rr.o.RemoteWait)
		release()
		if errors.Is(drainErr, pinning.ErrBusy) {
			drainErr = fmt.Errorf("%w: %w", node.ErrLocked, drainErr)
		}
	}
	reqs, err := pinning.OpenQueue(pinning.QueueDir(g.Repo), g.now).List()
	if err != nil {
		return stepFailed, "", err
	}
	mine := map[string]bool{}
	for _, s := range rr.remotes {
		for _, r := range recs {
			mine[s.Name+"\x00"+r.IPFSCID] = true
		}
	}
	var parts, problems []string
	pending := 0
	for _, r := range reqs {
		if !mine[r.Key()] {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s on %s: %s", r.Meta.FilePath, r.CID, r.Service, r.Status))
		switch {
		case r.Status == pinning.StatusFailed:
			problems = append(problems, fmt.Sprintf("%s on %s failed: %s", r.Meta.FilePath, r.Service, oneLine(r.LastError)))
		case r.Done():
		case r.LastError != "":
			problems = append(problems, fmt.Sprintf("%s on %s: %s", r.Meta.FilePath, r.Service, oneLine(r.LastError)))
		default:
			pending++
		}
	}
	summary := strings.Join(parts, "; ")
	if pending > 0 {
		summary += fmt.Sprintf("; %d still in progress: the daemon's remote-pins job or `ssid-anchor pins --retry` follows them up", pending)
	}
	if drainErr != nil {
		problems = append(problems, drainErr.Error())
	}
	if len(problems) > 0 {
		return stepFailed, summary, errors.New(strings.Join(problems, "; ") + " (`ssid-anchor pins` shows the queue; `ssid-anchor pins --retry` pushes again)")
	}
	return stepOK, summary, nil
}

// releaseTelemetryStep runs one telemetry check, which reports the new
// release event through the notify_on_release filter.
func releaseTelemetryStep(ctx context.Context, rr *releaseRun) (string, string, error) {
	g := rr.g
	root, err := tree.OpenRoot(g.Root)
	if err != nil {
		return stepFailed, "", err
	}
	defer root.Close()
	if f, err := root.Open(g.cfg.Paths.TelemetryConfig); errors.Is(err, fs.ErrNotExist) {
		return stepSkipped, "no telemetry config at " + g.cfg.Paths.TelemetryConfig, nil
	} else if err == nil {
		f.Close()
	}
	s, err := ops.LoadTelemetryConfigIn(g.opsEnv(), root)
	if err != nil {
		return stepFailed, "", err
	}
	if s.Invalid != nil {
		return stepFailed, "", ops.InvalidTelemetryConfig(s.ConfigRel, s.Invalid)
	}
	if !s.Config.Enabled {
		return stepSkipped, "telemetry disabled (enabled: false in " + s.ConfigRel + ")", nil
	}
	// Inside the daemon, wait for a running telemetry job instead of
	// failing on the state lock.
	leave, err := g.enterTelemetry(ctx)
	if err != nil {
		return stepFailed, "", err
	}
	defer leave()
	rep, err := ops.TelemetryMonitor(g.opsEnv(), s).Check(ctx, false)
	if err != nil {
		return stepFailed, "", err
	}
	rr.rep.Telemetry = rep
	var parts []string
	if !s.Config.EventFilters.NotifyOnRelease {
		parts = append(parts, "release notice filtered out (event_filters.notify_on_release: false)")
	}
	if len(rep.Channels) == 0 {
		parts = append(parts, "no channel enabled, nothing sent")
	}
	for _, d := range rep.Deliveries {
		for _, ch := range sortedKeysOf(d.Results) {
			if v := d.Results[ch]; v == "sent" {
				parts = append(parts, fmt.Sprintf("%s: sent %q", ch, d.Title))
			} else {
				parts = append(parts, fmt.Sprintf("%s: FAILED %q: %s", ch, d.Title, v))
			}
		}
	}
	if len(rep.Deliveries) == 0 && len(rep.Channels) > 0 {
		parts = append(parts, "nothing due")
	}
	summary := strings.Join(parts, "; ")
	if f := rep.Failures(); len(f) > 0 {
		return stepFailed, summary, fmt.Errorf("%d delivery(ies) failed; failed channels are retried at the next check", len(f))
	}
	return stepOK, summary, nil
}

func writeReleaseGitHubOutput(file string, rep *releaseReport) error {
	kv := [][2]string{{"quarter", rep.Quarter}}
	if b := rep.Bundle; b != nil {
		kv = append(kv, [2]string{"version", b.Version}, [2]string{"bundle", b.Bundle}, [2]string{"bundle_hash", b.Hash},
			[2]string{"release_manifest", b.Manifest}, [2]string{"event_proof_anchor", b.EventProofAnchor})
	}
	cidv, gw := "none", "none"
	if a := rep.IPFS; a != nil {
		cidv, gw = a.CID, a.GatewayURL
	}
	status := "ok"
	if !rep.OK {
		status = "failed"
	}
	kv = append(kv, [2]string{"ipfs_cid", cidv}, [2]string{"gateway_url", gw}, [2]string{"status", status})
	var b strings.Builder
	for _, p := range kv {
		fmt.Fprintf(&b, "%s=%s\n", p[0], p[1])
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(b.String())
	if err := f.Close(); werr == nil {
		werr = err
	}
	return werr
}

// releaseMarkdown is the pull request body: the Proof-Anchor block, how to
// check it, and the pipeline's steps.
func releaseMarkdown(rep *releaseReport, cidProfile string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## SSID Quarterly Release %s\n\n### Proof-Anchor\n\n", rep.Quarter)
	if r := rep.Bundle; r != nil {
		fmt.Fprintf(&b, "- **Version:** `%s`\n- **Bundle:** `%s` (%d files, %d bytes)\n- **Bundle SHA-256:** `%s`\n",
			r.Version, r.Bundle, len(r.Files), r.SizeBytes, r.Hash)
		if a := rep.IPFS; a != nil {
			fmt.Fprintf(&b, "- **IPFS CID:** `%s`\n- **Gateway:** %s\n", a.CID, a.GatewayURL)
		} else {
			b.WriteString("- **IPFS CID:** not anchored (see the steps below)\n")
		}
		fmt.Fprintf(&b, "- **Release event proof anchor:** `%s`\n- **Compliance score:** %s\n- **Root-24-LOCK:** %s\n- **Git commit:** `%s`\n- **Release manifest:** `%s`\n\n",
			r.EventProofAnchor, r.ComplianceScore, r.Root24Lock, r.GitCommit, r.Manifest)
		name := path.Base(r.Bundle)
		fmt.Fprintf(&b, "Check it: `sha256sum %s` prints the SHA-256 above", name)
		if rep.IPFS != nil {
			settings := "default settings"
			if cidProfile == "unixfs-v1-2025" {
				settings = "with the unixfs-v1-2025 import profile"
			}
			fmt.Fprintf(&b, ", and `ipfs add -Q --only-hash %s` (stock kubo, %s) prints the CID", name, settings)
		}
		b.WriteString(". The zip is reproducible: rebuilding the quarter from the same files gives the same bytes.\n\n")
	} else {
		b.WriteString("No bundle was built (see the steps below).\n\n")
	}
	b.WriteString("### Pipeline\n\n| Step | Result | Details |\n|---|---|---|\n")
	for _, s := range rep.Steps {
		d := s.Summary
		if s.Error != "" {
			d += ": " + s.Error
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", s.Name, s.Status, strings.ReplaceAll(d, "|", "\\|"))
	}
	return b.String()
}
