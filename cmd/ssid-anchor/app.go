package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
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
	Quiet      bool
	LogLevel   string
	LogFormat  string

	stdout, stderr io.Writer
	log            *slog.Logger
	cfg            appconfig.Config
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

	// unknown is the error for a word that names no command (urfave/cli
	// reports it through CommandNotFound, which cannot return one).
	unknown error
	// help holds what urfave/cli prints (help, usage): runWith puts it on
	// stdout when the command succeeds (`anchor --help | grep dry-run`)
	// and on stderr beside the error when it fails (a missing required
	// flag), so --json's stdout stays JSON only.
	help bytes.Buffer
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
		Name:  "ssid-anchor",
		Usage: "anchor, verify and watch a governance repository on an embedded IPFS node",
		// Help is a result, as with kubo, restic and git (SPEC 3,
		// streams): see globalOptions.help. Errors go to stderr.
		Writer:    &g.help,
		ErrWriter: g.stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Value: ".", EnvVars: []string{"SSID_ROOT"}, Usage: "governance tree `DIR`", Destination: &g.Root},
			&cli.StringFlag{Name: "repo", Value: defaultRepo(), EnvVars: []string{"SSID_ANCHOR_REPO"}, Usage: "IPFS repo `DIR`", Destination: &g.Repo},
			&cli.StringFlag{Name: "config", Usage: "appliance config `FILE` (default <repo>/appliance.json)", Destination: &g.ConfigFile},
			&cli.BoolFlag{Name: "json", Usage: "machine-readable output on stdout", Destination: &g.JSON},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress and no notices on stderr (results, warnings and errors still print)", Destination: &g.Quiet},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", Destination: &g.LogLevel},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log lines on stderr as text or json", Destination: &g.LogFormat},
			&cli.BoolFlag{Name: "version", Usage: "print the version (as the version command does) and exit"},
		},
		Action: rootAction(g),
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
			if g.served {
				if err := g.checkServed(c); err != nil {
					return err
				}
			}
			if first := c.Args().First(); versionRequested(c) || configCheckRequested(c) || configFree[first] || (first != "" && c.App.Command(first) == nil) {
				// An unknown command is reported as one (CommandNotFound),
				// whatever state the config is in.
				return nil
			}
			cfg, err := appconfig.Load(g.configPath(), g.ConfigFile != "")
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
			newBundleCommand(g),
			newReleaseCommand(g),
			newPinsCommand(g),
			newDaemonCommand(g),
			newStatusCommand(g),
			newVersionCommand(g),
			newConfigCommand(g),
			newCompletionCommand(g),
			newManCommand(g),
		},
		// Shell completion asks the binary for candidates (completion
		// bash|zsh|fish prints the scripts that do).
		EnableBashCompletion: true,
		// A word that names no command (ssid-anchor anchr, ssid-anchor
		// help anchr): a did-you-mean, not "No help topic for 'anchr'".
		CommandNotFound: func(c *cli.Context, name string) {
			cmds := c.App.Commands
			if c.Command != nil && c.Command.Subcommands != nil {
				cmds = c.Command.Subcommands
			}
			g.unknown = unknownCommand(commandPath(c), name, cmds)
		},
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(c *cli.Context, err error, sub bool) error {
			return usageError{flagUsageError(c, err, sub)}
		},
	}
	quietUsageErrors(app.Commands)
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

// globalFlagsNote tells each command's help where the global flags are.
const globalFlagsNote = "The global flags (--root, --repo, --config, --json, --quiet, --log-level, --log-format;\nsee ssid-anchor --help) may come before or after the command."

// quietUsageErrors makes a bad flag of any command (including those added
// later) an exit-2 usage error with a one-line message and a hint, instead
// of urfave/cli's full help dump, and notes the global flags in its help.
func quietUsageErrors(cmds []*cli.Command) {
	for _, c := range cmds {
		if c.Description != "" && !strings.Contains(c.Description, globalFlagsNote) {
			c.Description += "\n\n" + globalFlagsNote
		}
		if c.OnUsageError == nil {
			c.OnUsageError = func(c *cli.Context, err error, sub bool) error { return usageError{flagUsageError(c, err, sub)} }
		}
		checkRequiredHere(c)
		if c.BashComplete == nil {
			c.BashComplete = completeVisible
		}
		quietUsageErrors(c.Subcommands)
	}
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

// globalFlags are accepted anywhere on the command line (SPEC 3); the value
// flags take the next argument unless written --flag=value.
var globalFlags = map[string]bool{"root": true, "repo": true, "config": true, "log-level": true, "log-format": true, "json": false, "quiet": false, "q": false}

// hoistGlobalFlags moves every global flag, wherever it appears, in front of
// the command, where urfave/cli parses the app's flags: `ssid-anchor anchor
// --json` is `ssid-anchor --json anchor`, as kubo, restic and git users
// expect. urfave/cli v2 parses a command's flags only up to its first
// positional argument and knows the app's flags only before the command, so
// this one pass is what makes `verify --car a.car b.car --root T` work too.
// Nothing after a "--" is touched.
func hoistGlobalFlags(args []string) []string {
	if len(args) < 2 {
		return args
	}
	front := []string{args[0]}
	var rest []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesValue, global := globalFlags[name]
		if !global || !strings.HasPrefix(a, "-") || strings.HasPrefix(a, "---") {
			rest = append(rest, a)
			continue
		}
		front = append(front, a)
		if takesValue && !hasValue && i+1 < len(args) {
			i++
			front = append(front, args[i])
		}
	}
	return append(front, rest...)
}

// jsonRequested says whether --json was given, so that even a usage error
// that stops parsing is printed as JSON.
func jsonRequested(args []string) bool {
	on := false
	for _, a := range args[min(1, len(args)):] {
		if a == "--" {
			break
		}
		switch strings.TrimLeft(a, "-") {
		case "json", "json=true", "json=1":
			on = strings.HasPrefix(a, "-")
		case "json=false", "json=0":
			on = false
		}
	}
	return on
}

// countingWriter remembers whether anything was written.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// run executes the command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWith(ctx, &globalOptions{stdout: stdout, stderr: stderr}, args)
}

// runWith runs the command line with g's writers and per-request settings
// (the daemon runs each forwarded command through it).
func runWith(ctx context.Context, g *globalOptions, args []string) int {
	stderr, stdout := g.stderr, g.stdout
	out := &countingWriter{w: stdout}
	g.stdout = out
	if g.now == nil {
		g.now = func() time.Time { return time.Now().UTC() }
	}
	g.log = slog.New(slog.NewTextHandler(stderr, nil))
	app := newApp(g)
	args = spreadListFlags(hoistGlobalFlags(args))
	if len(args) > 1 && args[len(args)-1] == "--generate-bash-completion" {
		if slices.Contains(args, "--") {
			// urfave/cli completes nothing after "--" and would run the
			// command itself, with the flag as an argument: a Tab must
			// never run `anchor`.
			return exitOK
		}
		app.Writer = stdout // the completion scripts read candidates from stdout
	}
	err := app.RunContext(ctx, args)
	if err == nil && g.unknown != nil {
		err = g.unknown
	}
	if err == nil {
		out.Write(g.help.Bytes())
	} else {
		stderr.Write(g.help.Bytes())
	}
	g.help.Reset()
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
	// In --json mode stdout holds JSON only: a command that failed before
	// printing its document prints the error as one.
	if err != nil && (g.JSON || jsonRequested(args)) && out.n == 0 {
		writeJSON(stdout, map[string]any{"error": errorText(err), "exit_code": code})
	}
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
