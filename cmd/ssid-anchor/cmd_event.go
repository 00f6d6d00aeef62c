package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ssid/ssid-anchor/anchor/tree"
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

func runEvent(_ context.Context, o eventOptions, g *globalOptions) error {
	for flag, v := range map[string]string{"--event": o.Event, "--version": o.Version, "--hash": o.Hash} {
		if strings.TrimSpace(v) == "" {
			return usagef("%s must not be empty", flag)
		}
	}
	root, err := tree.OpenRoot(g.Root)
	if err != nil {
		return usageError{err}
	}
	defer root.Close()
	if err := tree.CheckRelative(g.cfg.Paths.EventsLog); err != nil {
		return usagef("paths.events_log: %v", err)
	}
	// The one verdict guard, telemetry, /status and the console show; an
	// exceptions file that cannot be read is recorded as unknown, never as
	// violated (the log is append-only: a false fact would stay).
	st := tree.CheckRoot24(root)
	lock := st.Status()
	switch lock {
	case tree.Root24Unknown:
		g.log.Warn("Root-24-LOCK could not be measured; recording it as unknown", "reason", st.Reason)
	case tree.Root24Violated:
		g.log.Warn("Root-24-LOCK is violated; see `ssid-anchor guard`", "problems", strings.Join(st.Problems, "; "))
	}
	bp := o.Blueprint
	if bp == "" {
		bp = g.cfg.Anchor.BlueprintVersion
	}
	ev := tree.NewEvent{
		Timestamp: g.now().Format("2006-01-02T15:04:05Z"), Event: o.Event, Version: o.Version,
		CommitHash: o.Hash, Blueprint: bp, Root24Lock: lock, ComplianceScore: o.ComplianceScore,
		EmittedBy: "ssid-anchor",
	}
	pa, err := root.AppendEvent(g.cfg.Paths.EventsLog, ev)
	if errors.Is(err, tree.ErrOutsideRoot) {
		return usagef("paths.events_log: %v", err)
	}
	if err != nil {
		return fmt.Errorf("appending event to %s: %w", root.Path(g.cfg.Paths.EventsLog), err)
	}
	if g.JSON {
		return writeJSON(g.stdout, map[string]any{"event": o.Event, "timestamp": ev.Timestamp, "proof_anchor": pa, "log": g.cfg.Paths.EventsLog, "root_24_lock": lock})
	}
	fmt.Fprintf(g.notices(), "appended %s (%s) to %s\n", o.Event, o.Version, g.cfg.Paths.EventsLog)
	fmt.Fprintf(g.stdout, "Proof-Anchor: SHA256: %s\n", pa)
	return nil
}
