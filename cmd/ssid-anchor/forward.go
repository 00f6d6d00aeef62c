package main

// What of the control socket is about the command line: which commands
// run in a daemon, the command line the client sends (every setting
// explicit, every path absolute), the secrets that travel with it, and the
// daemon's check of a command line it received. The protocol itself is
// internal/control.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/ssid/ssid-anchor/anchor/pinning"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/control"
	"github.com/ssid/ssid-anchor/node"
	"github.com/urfave/cli/v2"
)

// forwardedExit carries the exit code of a command the daemon ran; its
// output was already relayed.
type forwardedExit struct{ code int }

func (e forwardedExit) Error() string { return "exit " + strconv.Itoa(e.code) }

// forwardedCommands need the repo, so while a daemon holds it they run in
// the daemon. The others run here: init (idempotent, reads the identity
// without the lock), event (appends to the tree under its own lock),
// telemetry (tree files under their own locks; --watch is a loop of its
// own), guard, bundle (tree only), daemon, help.
var forwardedCommands = map[string]bool{
	"anchor": true, "verify": true, "export": true, "import": true,
	"status": true, "pins": true, "release": true,
}

// checkServed decides whether a command line the daemon received may run
// there, with the parser that runs it: it is the app's Before, so the
// global flags are parsed and c.Args().First() is the word urfave/cli is
// about to run as the command. Anything but a forwarded command is refused
// (a nested daemon would run on the daemon's node and replace its socket;
// init, event and the others run in the client's process anyway), and so
// is a command line that names another repo or config than the daemon's:
// the command runs on the daemon's open node, and writes that repo's chain
// head, remote pin queue and scheduler state, so it must be the repo (and
// the config) the daemon was started with.
func (g *globalOptions) checkServed(c *cli.Context) error {
	name := c.Args().First()
	cmd := c.App.Command(name)
	if cmd == nil || !forwardedCommands[cmd.Name] {
		return usagef("the daemon runs only %s, not %q; run that command without the daemon's socket (it does not need the repo)", strings.Join(keysOf(forwardedCommands), ", "), name)
	}
	d := g.daemon
	if d == nil {
		return fmt.Errorf("internal: a served command without its daemon")
	}
	if !samePath(g.Repo, d.node.RepoPath()) {
		return usagef("--repo %s is not the repo this daemon serves (%s): a command sent to a daemon runs on that daemon's node; run it against the repo's own daemon, or stop the daemon", g.Repo, d.node.RepoPath())
	}
	if g.ConfigFile != "" && !samePath(g.ConfigFile, d.g.configPath()) {
		return usagef("--config %s is not the config this daemon runs with (%s): a command sent to a daemon runs with the daemon's config; drop --config, or stop the daemon to run with another", g.ConfigFile, d.g.configPath())
	}
	return nil
}

// samePath says whether a and b name the same file or directory (through
// any symlinks); two paths that do not exist are the same only when they
// are spelled the same.
func samePath(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(sa, sb)
	}
	if errA == nil || errB == nil {
		return false
	}
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

// secretEnvCommands may deliver notifications or pin remotely, so the
// client's secrets travel with them (see requestEnv).
var secretEnvCommands = map[string]bool{"anchor": true, "pins": true, "release": true}

// positionalPaths are commands whose arguments are file names.
var positionalPaths = map[string]bool{"import": true}

// maybeForward runs the command in the daemon serving g.Repo, if there is
// one. ok is false when the command must run here.
func maybeForward(c *cli.Context, g *globalOptions) (ok bool, err error) {
	name := c.Command.Name
	if g.served || !forwardedCommands[name] {
		return false, nil
	}
	conn, err := control.Dial(g.Repo)
	if err != nil {
		if !errors.Is(err, control.ErrNoDaemon) {
			g.daemonErr = err
		}
		// The command opens the repo here: another user's repo is exit 3
		// with the owner named, whichever file the command would have
		// touched first (issue 25.16).
		if err := node.CheckAccess(g.Repo); err != nil {
			return true, err
		}
		return false, nil
	}
	argv, spelled, err := canonicalArgv(c, g)
	if err != nil {
		conn.Close()
		return true, err
	}
	cwd, _ := os.Getwd()
	req := control.Request{Version: control.Version, Argv: argv, Cwd: cwd, Env: requestEnv(name, g)}
	code, err := control.Forward(c.Context, conn, req, respell(g.stdout, spelled), respell(g.stderr, spelled))
	var oe *control.OutputError
	switch {
	case errors.As(err, &oe) && errors.Is(oe, syscall.EPIPE):
		// The reader went away (`ssid-anchor export | head`): the daemon
		// was told to stop, and the command ends quietly, non-zero.
		return true, forwardedExit{exitBrokenPipe}
	case err != nil:
		return true, err
	}
	return true, forwardedExit{code}
}

// exitBrokenPipe is how a forwarded command ends when its stdout is a
// closed pipe: 128+SIGPIPE, what the shell reports for a process that
// SIGPIPE killed (kubo, or this binary running the command itself, when
// fd 1 is the pipe) and what git exits with when SIGPIPE is ignored.
const exitBrokenPipe = 128 + int(syscall.SIGPIPE)

// canonicalArgv rebuilds the command line with every setting explicit and
// every path absolute: the daemon has its own working directory and
// environment, so --root from SSID_ROOT or a relative --car must be
// resolved here. Path-valued flags are the ones marked TakesFile (or of
// type cli.PathFlag); a new path flag must set TakesFile. spelled maps each
// command path made absolute back to the user's spelling, so the output
// names "cars/x.car" as it would without the daemon.
func canonicalArgv(c *cli.Context, g *globalOptions) (argv []string, spelled map[string]string, err error) {
	spelled = map[string]string{}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		if a, err := filepath.Abs(p); err == nil {
			spelled[a] = p
			return a
		}
		return p
	}
	absGlobal := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	argv = []string{"ssid-anchor", "--root", absGlobal(g.Root), "--repo", absGlobal(g.Repo), "--log-level", g.LogLevel}
	if g.ConfigFile != "" {
		argv = append(argv, "--config", absGlobal(g.ConfigFile))
	}
	if g.LogFormat != "" {
		argv = append(argv, "--log-format", g.LogFormat)
	}
	if g.JSON {
		argv = append(argv, "--json")
	}
	argv = append(argv, c.Command.Name)
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if !c.IsSet(name) {
			// An unset path flag with a relative default would resolve
			// against the daemon's directory: send the default resolved.
			if sf, ok := f.(*cli.StringFlag); ok && sf.TakesFile && sf.Value != "" {
				argv = append(argv, "--"+name+"="+abs(sf.Value))
			}
			continue
		}
		switch f := f.(type) {
		case *cli.BoolFlag:
			argv = append(argv, "--"+name+"="+strconv.FormatBool(c.Bool(name)))
		case *cli.StringFlag:
			v := c.String(name)
			if f.TakesFile {
				v = abs(v)
			}
			argv = append(argv, "--"+name+"="+v)
		case *cli.PathFlag:
			argv = append(argv, "--"+name+"="+abs(c.Path(name)))
		case *cli.StringSliceFlag:
			for _, v := range c.StringSlice(name) {
				if f.TakesFile {
					v = abs(v)
				}
				argv = append(argv, "--"+name+"="+v)
			}
		case *cli.DurationFlag:
			argv = append(argv, "--"+name+"="+c.Duration(name).String())
		case *cli.IntFlag:
			argv = append(argv, "--"+name+"="+strconv.Itoa(c.Int(name)))
		case *cli.Int64Flag:
			argv = append(argv, "--"+name+"="+strconv.FormatInt(c.Int64(name), 10))
		case *cli.UintFlag:
			argv = append(argv, "--"+name+"="+strconv.FormatUint(uint64(c.Uint(name)), 10))
		case *cli.Float64Flag:
			argv = append(argv, "--"+name+"="+strconv.FormatFloat(c.Float64(name), 'g', -1, 64))
		default:
			return nil, nil, fmt.Errorf("internal: flag --%s of %s (%T) cannot be sent to the daemon; add its type to canonicalArgv", name, c.Command.Name, f)
		}
	}
	argv = append(argv, "--")
	for _, a := range c.Args().Slice() {
		if positionalPaths[c.Command.Name] {
			a = abs(a)
		}
		argv = append(argv, a)
	}
	return argv, spelled, nil
}

// respell writes through w with the absolute paths in spelled turned back
// into the user's spelling (longest first, so a path is never replaced
// inside a longer one). Commands print each line with one write, so a path
// is not split across writes.
func respell(w io.Writer, spelled map[string]string) io.Writer {
	if len(spelled) == 0 {
		return w
	}
	var pairs []string
	keys := make([]string, 0, len(spelled))
	for k := range spelled {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { return len(keys[a]) > len(keys[b]) })
	for _, k := range keys {
		pairs = append(pairs, k, spelled[k])
	}
	return replaceWriter{w, strings.NewReplacer(pairs...)}
}

type replaceWriter struct {
	w io.Writer
	r *strings.Replacer
}

func (rw replaceWriter) Write(p []byte) (int, error) {
	if _, err := rw.r.WriteString(rw.w, string(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// secretEnvKeys are the variables that may hold secrets a forwarded command
// needs: notification channels (SPEC 2.4) and remote pinning tokens
// (SPEC 4.3, names from the config).
func secretEnvKeys(g *globalOptions) []string {
	keys := []string{"SLACK_WEBHOOK_URL", "DISCORD_WEBHOOK_URL", "WEBHOOK_URL", "SMTP_USERNAME", "SMTP_PASSWORD",
		"WEB3_STORAGE_AUTH_SECRET", "WEB3_STORAGE_AUTHORIZATION"}
	// With the presets: filecoin-pin needs no config entry, and its token
	// must reach the daemon all the same.
	for _, s := range pinning.WithPresets(g.cfg.RemotePinning.Services) {
		for _, k := range []string{s.TokenEnv, s.AuthSecretEnv, s.AuthorizationEnv} {
			if k != "" && !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// requestEnv is the environment a forwarded command sees in the daemon,
// beyond the daemon's own. Non-secret settings travel as explicit flags
// (canonicalArgv), so nothing else is needed. Secrets travel only for
// commands that use them (anchor, pins, release may pin remotely or
// notify), only if set here, over the owner-only socket; the daemon keeps
// them in that request's memory, never in its own environment, logs or
// output. A variable not set here falls back to the daemon's (the systemd
// unit's EnvironmentFile), so the appliance's configured tokens work for a
// bare `ssid-anchor anchor`.
func requestEnv(cmd string, g *globalOptions) map[string]string {
	if !secretEnvCommands[cmd] {
		return nil
	}
	env := map[string]string{}
	for _, k := range secretEnvKeys(g) {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	return env
}
