package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ssid/ssid-anchor/node"
	"github.com/ssid/ssid-anchor/scheduler"
	"github.com/urfave/cli/v2"
)

// globalOptions are the flags every command shares, plus what they load.
type globalOptions struct {
	Root       string
	Repo       string
	ConfigFile string
	JSON       bool
	LogLevel   string
	LogFormat  string

	stdout, stderr io.Writer
	log            *slog.Logger
	cfg            applianceConfig
	now            func() time.Time
	// shared is the daemon's open node when a command runs inside the
	// daemon (see openNode); nil in a one-shot process.
	shared *node.Node

	// Per-request settings of a command the daemon runs (control.go);
	// zero in a one-shot process.
	served    bool    // runs inside the daemon: never forward again
	daemon    *daemon // the daemon serving this command
	daemonErr error   // a daemon is there but its socket was unreachable
	getenv    func(string) string
	jobName   string // set when a scheduled job runs the command code
	// clock drives scheduler loops (telemetry --watch); nil is the wall
	// clock.
	clock scheduler.Clock
}

// env reads an environment variable the way this command should see it:
// inside the daemon, the client's value first (requestEnv), then the
// daemon's.
func (g *globalOptions) env(k string) string {
	if g.getenv != nil {
		return g.getenv(k)
	}
	return os.Getenv(k)
}

func defaultRepo() string {
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".ssid-anchor")
	}
	return ".ssid-anchor"
}

// newApp builds the command tree. Commands return errors; run maps them to
// exit codes, so urfave's os.Exit handler never skips a deferred Close.
func newApp(g *globalOptions) *cli.App {
	app := &cli.App{
		Name:      "ssid-anchor",
		Usage:     "anchor, verify and watch a governance repository on an embedded IPFS node",
		Writer:    g.stdout,
		ErrWriter: g.stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Value: ".", EnvVars: []string{"SSID_ROOT"}, Usage: "governance tree `DIR`", Destination: &g.Root},
			&cli.StringFlag{Name: "repo", Value: defaultRepo(), EnvVars: []string{"SSID_ANCHOR_REPO"}, Usage: "IPFS repo `DIR`", Destination: &g.Repo},
			&cli.StringFlag{Name: "config", Usage: "appliance config `FILE` (default <repo>/appliance.json)", Destination: &g.ConfigFile},
			&cli.BoolFlag{Name: "json", Usage: "machine-readable output on stdout", Destination: &g.JSON},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", Destination: &g.LogLevel},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json", Destination: &g.LogFormat},
		},
		Before: func(c *cli.Context) error {
			lvl, err := parseLevel(g.LogLevel)
			if err != nil {
				return err
			}
			log, err := newLogger(g.stderr, g.LogFormat, lvl)
			if err != nil {
				return err
			}
			g.log = log
			cfg, err := loadApplianceConfig(g.configPath(), g.ConfigFile != "")
			if err != nil {
				return err
			}
			g.cfg = cfg
			return nil
		},
		Commands: []*cli.Command{
			newInitCommand(g),
			newAnchorCommand(g),
			newEventCommand(g),
			newVerifyCommand(g),
			newExportCommand(g),
			newImportCommand(g),
			newTelemetryCommand(g),
			newGuardCommand(g),
			newDaemonCommand(g),
			newStatusCommand(g),
		},
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
	}
	// While a daemon holds the repo, commands that need it run there
	// (control.go): the flags are parsed here, then sent.
	for _, cmd := range app.Commands {
		action := cmd.Action
		if action == nil {
			continue
		}
		cmd.Action = func(c *cli.Context) error {
			if ok, err := maybeForward(c, g); ok {
				return err
			}
			return action(c)
		}
	}
	return app
}

// newLogger logs as text (for people) or JSON (for journald or a log
// shipper).
func newLogger(w io.Writer, format string, lvl slog.Level) (*slog.Logger, error) {
	o := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, usagef("--log-format: %q is not one of text, json", format)
}

func (g *globalOptions) configPath() string {
	if g.ConfigFile != "" {
		return g.ConfigFile
	}
	return filepath.Join(g.Repo, "appliance.json")
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usagef("--log-level: %q is not one of debug, info, warn, error", s)
	}
	return l, nil
}

// run executes the command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWith(ctx, &globalOptions{stdout: stdout, stderr: stderr}, args)
}

// runWith runs the command line with g's writers and per-request settings
// (the daemon runs each forwarded command through it).
func runWith(ctx context.Context, g *globalOptions, args []string) int {
	stderr := g.stderr
	if g.now == nil {
		g.now = func() time.Time { return time.Now().UTC() }
	}
	g.log = slog.New(slog.NewTextHandler(stderr, nil))
	app := newApp(g)
	err := app.RunContext(ctx, args)
	var fe forwardedExit
	if errors.As(err, &fe) {
		return fe.code // the daemon printed what happened
	}
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w", context.Canceled)
	}
	if err != nil {
		if isUsage(err) {
			err = usageError{err}
		}
		printErrorFor(stderr, err, g)
	}
	code, _ := exitCode(err)
	return code
}

// isUsage recognises urfave/cli's own flag errors, which are plain errors.
func isUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"flag provided but not defined", "Required flag", "Required flags", "No help topic", "invalid value"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
