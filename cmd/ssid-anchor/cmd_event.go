package main

import (
	"context"
	"fmt"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
	"github.com/urfave/cli/v2"
)

type eventOptions struct {
	Event, Version, Hash, Blueprint, ComplianceScore string
}

func newEventCommand(g *globalOptions) *cli.Command {
	var o eventOptions
	return &cli.Command{
		Name:  "event",
		Usage: "append a registry event to the log and print its proof anchor",
		Description: `Appends one event in the classic pretty form, under an exclusive lock, fsynced.
The proof anchor printed is the SHA-256 of the event's bytes from { to }.
root_24_lock is measured (see guard), not assumed.

Exit codes: 0 appended, 1 could not write, 2 missing or bad flag.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "event", Required: true, Destination: &o.Event, Usage: "event `NAME`, e.g. governance_release_approved"},
			&cli.StringFlag{Name: "version", Required: true, Destination: &o.Version, Usage: "version, e.g. v4.3.0"},
			&cli.StringFlag{Name: "hash", Required: true, Destination: &o.Hash, Usage: "commit or artifact hash (stored as commit_hash)"},
			&cli.StringFlag{Name: "blueprint", Destination: &o.Blueprint, Usage: "blueprint version (default: anchor.blueprint_version)"},
			&cli.StringFlag{Name: "compliance-score", Destination: &o.ComplianceScore, Value: "100/100", Usage: "compliance score, e.g. 100/100"},
		},
		Action: func(c *cli.Context) error { return runEvent(c.Context, o, g) },
	}
}

func runEvent(ctx context.Context, o eventOptions, g *globalOptions) error {
	res, err := ops.Event(ctx, g.opsEnv(), ops.EventOptions(o))
	if err != nil {
		return err
	}
	if g.JSON {
		return writeJSON(g.stdout, map[string]any{"event": res.Event, "timestamp": res.Timestamp, "proof_anchor": res.ProofAnchor, "log": res.Log, "root_24_lock": res.Root24Lock})
	}
	fmt.Fprintf(g.notices(), "appended %s (%s) to %s\n", res.Event, res.Version, res.Log)
	fmt.Fprintf(g.stdout, "Proof-Anchor: SHA256: %s\n", res.ProofAnchor)
	return nil
}
