package main

import (
	"context"
	"fmt"
	"io"

	"github.com/ssid/ssid-anchor/anchor/release"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/buildinfo"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
	"github.com/urfave/cli/v2"
)

type bundleOptions struct {
	Quarter string
}

func newBundleCommand(g *globalOptions) *cli.Command {
	var o bundleOptions
	return &cli.Command{
		Name:  "bundle",
		Usage: "build the quarterly release bundle (reproducible zip), its manifest and release event",
		Description: `Zips the nine release files of SPEC 2.7 (compliance report of the quarter,
dashboard, registry log, integrity checksums if present, dashboard manifest,
branch protection rules, operations guide, promotion rules, README) into
05_documentation/releases/SSID_Quarterly_Release_YYYY-QN.zip, writes
quarterly_release_manifest_YYYY-QN.json, appends governance_release_published
to the registry log and writes registry/events/release_YYYY-QN.json.

The zip is reproducible: every entry carries the same time (SOURCE_DATE_EPOCH,
else the quarter's last second UTC), mode 0644 and fixed deflate settings, so
the same inputs give the same SHA-256 anywhere. The default quarter is the
last one that has ended (UTC): run on Jan 1 it bundles the previous Q4.
Building a quarter again with unchanged inputs changes nothing; with changed
inputs it writes a new zip and manifest and appends a new release event.

Exit codes: 0 built (or already up to date), 1 a required file is missing or a
write failed (nothing partial is left), 2 bad --quarter or SOURCE_DATE_EPOCH.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "quarter", Destination: &o.Quarter, Usage: "quarter `YYYY-QN` (default: the last quarter that ended, UTC)"},
		},
		Action: func(c *cli.Context) error { return runBundle(c.Context, o, g) },
	}
}

// buildBundle is the bundle step of `bundle` and `release`.
func buildBundle(ctx context.Context, o bundleOptions, g *globalOptions) (*release.Result, error) {
	return ops.Bundle(ctx, g.opsEnv(), ops.BundleOptions{Quarter: o.Quarter, GeneratorVersion: buildinfo.Read().Version})
}

func runBundle(ctx context.Context, o bundleOptions, g *globalOptions) error {
	res, err := buildBundle(ctx, o, g)
	if err != nil {
		return err
	}
	if g.JSON {
		return writeJSON(g.stdout, res)
	}
	printBundle(g.notices(), res) // the details; the sha256sum line is the result
	fmt.Fprintf(g.stdout, "%s  %s\n", res.Hash, res.Bundle)
	return nil
}

func printBundle(w io.Writer, res *release.Result) {
	for _, warn := range res.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	fmt.Fprintf(w, "release %s (%s): %s, %d files, %d bytes, entries dated %s\n",
		res.Quarter, res.Version, res.Bundle, len(res.Files), res.SizeBytes, res.EntryTime)
	fmt.Fprintf(w, "  sha256 %s\n  compliance %s, Root-24-LOCK %s, commit %s\n", res.Hash, res.ComplianceScore, res.Root24Lock, res.GitCommit)
	if res.Replaced != "" {
		fmt.Fprintf(w, "  inputs changed since the last build: replaced bundle %s\n", res.Replaced)
	}
	if res.EventAppended {
		fmt.Fprintf(w, "  appended %s (proof anchor %s)\n", release.EventName, res.EventProofAnchor)
	} else {
		fmt.Fprintf(w, "  %s already in the log for this bundle (proof anchor %s)\n", release.EventName, res.EventProofAnchor)
	}
	if len(res.Written) == 0 {
		fmt.Fprintln(w, "  up to date: same inputs as the last build, nothing written")
	}
	for _, f := range res.Written {
		fmt.Fprintf(w, "  wrote %s\n", f)
	}
}
