package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ssid/ssid-anchor/node"
	"github.com/urfave/cli/v2"
)

// globalOptions are the flags every command shares, plus what they load.
type globalOptions struct {
	Root       string
	Repo       string
	ConfigFile string
	JSON       bool
	LogLevel   string

	stdout, stderr io.Writer
	log            *slog.Logger
	cfg            applianceConfig
	now            func() time.Time
	// shared is the daemon's open node when a command runs inside the
	// daemon (see openNode); nil in a one-shot process.
	shared *node.Node
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
		},
		Before: func(c *cli.Context) error {
			lvl, err := parseLevel(g.LogLevel)
			if err != nil {
				return err
			}
			g.log = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: lvl}))
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
			newPinsCommand(g),
		},
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
	}
	return app
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
	g := &globalOptions{stdout: stdout, stderr: stderr, now: func() time.Time { return time.Now().UTC() }}
	g.log = slog.New(slog.NewTextHandler(stderr, nil))
	app := newApp(g)
	err := app.RunContext(ctx, args)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w", context.Canceled)
	}
	if err != nil {
		if isUsage(err) {
			err = usageError{err}
		}
		printError(stderr, err)
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
