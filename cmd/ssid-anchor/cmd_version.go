package main

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/buildinfo"
	"github.com/urfave/cli/v2"
)

func newVersionCommand(g *globalOptions) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "the build: version, commit and its date, Go and kubo versions",
		Description: `Prints which build of ssid-anchor this is (also: ssid-anchor --version):
the module version, the commit it was built from with its date ("+dirty" when
the tree had uncommitted changes), the Go version and platform, and the kubo
version embedded. With --json, one JSON document with the keys version,
commit, date, modified, go_version, kubo_version, platform.

A release host pins this version; the daemon's /metrics exports it as
ssid_anchor_build_info, status shows it, and every release manifest names it
under metadata.generator_version. Reads no repo and no config.

Exit codes: 0 shown.`,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("version takes no arguments (got %q)", c.Args().First())
			}
			return runVersion(c.Context, g)
		},
	}
}

func runVersion(_ context.Context, g *globalOptions) error {
	in := buildinfo.Read()
	if g.JSON {
		return writeJSON(g.stdout, in)
	}
	w := g.stdout
	fmt.Fprintf(w, "ssid-anchor %s\n", in.Version)
	if in.Commit == "" {
		fmt.Fprintln(w, "commit:  unknown (built without VCS information; make build stamps it)")
	} else {
		fmt.Fprintf(w, "commit:  %s\ndate:    %s\n", in.CommitLabel(), orDash(in.Date))
	}
	fmt.Fprintf(w, "go:      %s %s\n", in.GoVersion, in.Platform)
	fmt.Fprintf(w, "kubo:    %s\n", orDash(in.KuboVersion))
	return nil
}

// versionRequested: `version` and `--version` read no config, so they work
// whatever state the appliance config is in.
func versionRequested(c *cli.Context) bool {
	return c.Bool("version") || c.Args().First() == "version"
}

// rootAction is the app's action: --version, or urfave/cli's own answer
// to a missing or unknown command (help, or CommandNotFound's did-you-mean).
func rootAction(g *globalOptions) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.Bool("version") {
			return runVersion(c.Context, g)
		}
		if c.Args().Present() {
			return cli.ShowCommandHelp(c, c.Args().First())
		}
		_ = cli.ShowAppHelp(c)
		return nil
	}
}

// buildInfoMetric is ssid_anchor_build_info{version,commit,go_version,
// kubo_version} 1, the Prometheus idiom for which build runs.
func buildInfoMetric() prometheus.Collector {
	in := buildinfo.Read()
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "build_info", Help: "Which build of ssid-anchor runs (always 1): version, commit (+dirty when modified), Go and kubo versions.",
		ConstLabels: prometheus.Labels{"version": in.Version, "commit": in.CommitLabel(), "go_version": in.GoVersion, "kubo_version": in.KuboVersion},
	}, func() float64 { return 1 })
}
