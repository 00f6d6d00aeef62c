package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ssid/ssid-anchor/anchor/tree"
)

// EventOptions are `event`'s.
type EventOptions struct {
	Event, Version, Hash, Blueprint, ComplianceScore string
}

// EventResult is the event appended and its proof anchor.
type EventResult struct {
	Event, Version, Timestamp, ProofAnchor string
	// Log is the registry log appended to (paths.events_log).
	Log        string
	Root24Lock string
}

// Event appends one registry event to the log, under its lock, with
// Root-24-LOCK measured (the same verdict guard shows).
func Event(_ context.Context, e Env, o EventOptions) (*EventResult, error) {
	for flag, v := range map[string]string{"--event": o.Event, "--version": o.Version, "--hash": o.Hash} {
		if strings.TrimSpace(v) == "" {
			return nil, Usagef("%s must not be empty", flag)
		}
	}
	root, err := tree.OpenRoot(e.Root)
	if err != nil {
		return nil, UsageError{err}
	}
	defer root.Close()
	if err := tree.CheckRelative(e.Config.Paths.EventsLog); err != nil {
		return nil, Usagef("paths.events_log: %v", err)
	}
	// The one verdict guard, telemetry, /status and the console show; an
	// exceptions file that cannot be read is recorded as unknown, never as
	// violated (the log is append-only: a false fact would stay).
	st := tree.CheckRoot24(root)
	lock := st.Status()
	switch lock {
	case tree.Root24Unknown:
		e.log().Warn("Root-24-LOCK could not be measured; recording it as unknown", "reason", st.Reason)
	case tree.Root24Violated:
		e.log().Warn("Root-24-LOCK is violated; see `ssid-anchor guard`", "problems", strings.Join(st.Problems, "; "))
	}
	bp := o.Blueprint
	if bp == "" {
		bp = e.Config.Anchor.BlueprintVersion
	}
	ev := tree.NewEvent{
		Timestamp: e.now().Format("2006-01-02T15:04:05Z"), Event: o.Event, Version: o.Version,
		CommitHash: o.Hash, Blueprint: bp, Root24Lock: lock, ComplianceScore: o.ComplianceScore,
		EmittedBy: "ssid-anchor",
	}
	pa, err := root.AppendEvent(e.Config.Paths.EventsLog, ev)
	if errors.Is(err, tree.ErrOutsideRoot) {
		return nil, Usagef("paths.events_log: %v", err)
	}
	if err != nil {
		return nil, fmt.Errorf("appending event to %s: %w", root.Path(e.Config.Paths.EventsLog), err)
	}
	return &EventResult{Event: o.Event, Version: o.Version, Timestamp: ev.Timestamp, ProofAnchor: pa, Log: e.Config.Paths.EventsLog, Root24Lock: lock}, nil
}

// GuardResult is Root-24-LOCK as measured at Dir.
type GuardResult struct {
	Dir string
	tree.Root24
}

// Failed says why Root-24-LOCK is not active ("" when it is).
func (g *GuardResult) Failed() string {
	switch g.Status() {
	case tree.Root24Unknown:
		return "Root-24-LOCK could not be measured: " + g.Reason
	case tree.Root24Violated:
		return "Root-24-LOCK is violated: " + strings.Join(g.Problems, "; ")
	}
	return ""
}

// Guard measures Root-24-LOCK: exactly the 24 module directories plus the
// listed exceptions.
func Guard(_ context.Context, e Env) (*GuardResult, error) {
	root, err := tree.OpenRoot(e.Root)
	if err != nil {
		return nil, UsageError{err}
	}
	defer root.Close()
	return &GuardResult{Dir: root.Dir(), Root24: tree.CheckRoot24(root)}, nil
}
