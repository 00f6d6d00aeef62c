package main

import (
	"context"
	"fmt"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
	"github.com/urfave/cli/v2"
)

func newGuardCommand(g *globalOptions) *cli.Command {
	return &cli.Command{
		Name:  "guard",
		Usage: "measure Root-24-LOCK: exactly the 24 module directories plus listed exceptions",
		Description: `Reads the root: one directory NN_* for each of 01..24, and no other entry unless
23_compliance/exceptions/root_level_exceptions.yaml lists it. Prints "active",
"violated" or "unknown" and why; with --json, the whole measurement. The
verdict is unknown (never violated) when the exceptions file cannot be read
or understood (missing, not YAML, an unknown shape, YAML aliases); event,
telemetry, /status and the console show the same verdict.

Exit codes: 0 active, 1 violated or unknown, 2 bad --root.`,
		Action: func(c *cli.Context) error { return runGuard(c.Context, g) },
	}
}

func runGuard(ctx context.Context, g *globalOptions) error {
	st, err := ops.Guard(ctx, g.opsEnv())
	if err != nil {
		return err
	}
	if g.JSON {
		doc := map[string]any{
			"root": st.Dir, "root_24_lock": st.Status(), "ok": st.OK(), "modules": len(st.Modules),
			"missing": nonNil(st.Missing), "duplicates": nonNil(st.Duplicates), "unexpected": nonNil(st.Unexpected),
			"exceptions_file": st.ExceptionsFile, "problems": nonNil(st.Problems),
		}
		if st.Reason != "" {
			doc["reason"], doc["unjudged"] = st.Reason, nonNil(st.Unjudged)
		}
		if err := writeJSON(g.stdout, doc); err != nil {
			return err
		}
	} else {
		// The verdict is the result, one line for scripts (README); what
		// it was measured on and why it is not active go to stderr.
		fmt.Fprintf(g.stdout, "Root-24-LOCK: %s\n", st.Status())
		fmt.Fprintf(g.stderr, "%s: %d module directories", st.Dir, len(st.Modules))
		if st.ExceptionsFile != "" {
			fmt.Fprintf(g.stderr, ", exceptions from %s", st.ExceptionsFile)
		}
		fmt.Fprintln(g.stderr)
		for _, p := range st.Problems {
			fmt.Fprintf(g.stderr, "  %s\n", p)
		}
	}
	if msg := st.Failed(); msg != "" {
		return failure{msg}
	}
	return nil
}
