package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
	"github.com/ssid/ssid-anchor/node"
)

// Exit codes (SPEC section 3).
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitRepo        = 3
	exitInterrupted = 130
)

// usageError marks a bad flag, argument or config value: exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// failure marks an operational failure whose details were already printed
// (a verify mismatch, a channel that failed): exit 1 with a one-line summary.
type failure struct{ msg string }

func (f failure) Error() string { return f.msg }

// exitCode picks the exit code for an error and the hint that tells the user
// what to do next.
func exitCode(err error) (int, string) {
	var ue usageError
	var oue ops.UsageError
	var ce *appconfig.Error
	var cu commandUsage
	switch {
	case err == nil:
		return exitOK, ""
	case errors.As(err, &cu):
		return exitUsage, fmt.Sprintf("see `%s --help` for usage", cu.path)
	case errors.Is(err, context.Canceled):
		return exitInterrupted, ""
	case errors.Is(err, node.ErrNotInitialized):
		return exitRepo, "run `ssid-anchor init` first (or point --repo / SSID_ANCHOR_REPO at an existing repo)"
	case errors.Is(err, anchor.ErrManifestLocked):
		return exitRepo, "another anchoring run holds this governance tree's manifest (perhaps with another --repo: CI and a daemon on one checkout); wait for it to finish, then run again"
	case errors.Is(err, node.ErrLocked):
		return exitRepo, "another ssid-anchor process (a running daemon or another command) holds the repo; wait for it to finish or stop it"
	case errors.Is(err, node.ErrPermission):
		return exitRepo, permissionHint(err)
	case errors.As(err, &ce):
		return exitUsage, configHint
	case errors.As(err, &ue), errors.As(err, &oue), errors.As(err, &ce):
		return exitUsage, "see `ssid-anchor help` for usage"
	default:
		return exitFailure, ""
	}
}

// configHint is what to do about a bad appliance config.
const configHint = "check the file with `ssid-anchor config check FILE` (every key and its default: `ssid-anchor config show`, README \"Appliance config: show and check\")"

// permissionHint tells the user of another user's repo what to do: run the
// command as that user (the daemon's service account), or use a repo of
// their own.
func permissionHint(err error) string {
	var ae *node.AccessError
	if errors.As(err, &ae) && ae.Mine {
		return fmt.Sprintf("give yourself access to %s again (chmod u+rw), or point --repo / SSID_ANCHOR_REPO at another repo", ae.Path)
	}
	owner := "the repo's owner"
	if errors.As(err, &ae) && ae.Owner != "" {
		owner = ae.Owner
		if name, _, ok := strings.Cut(owner, " (uid"); ok {
			owner = name
		}
	}
	return fmt.Sprintf("run the command as %s (e.g. sudo -u %s ssid-anchor ...; a daemon running as that user serves it), or point --repo / SSID_ANCHOR_REPO at a repo of your own", owner, owner)
}

// errorText is the one-line message printError shows for err.
func errorText(err error) string {
	if code, _ := exitCode(err); code == exitInterrupted {
		return "interrupted"
	}
	return strings.TrimSpace(err.Error())
}

func printError(w io.Writer, err error) { printErrorFor(w, err, nil) }

// printErrorFor prints err with the hint that fits where the command ran:
// a command the daemon serves must never be told to stop the daemon.
func printErrorFor(w io.Writer, err error, g *globalOptions) {
	code, hint := exitCode(err)
	if errors.Is(err, node.ErrLocked) && g != nil {
		switch {
		case g.served:
			hint = "another ssid-anchor process outside the daemon (a one-shot command run with a different --repo on the same tree) is using it; wait for it to finish and run the command again"
		case g.daemonErr != nil:
			hint = fmt.Sprintf("a daemon holds the repo, but this command could not reach it (%v); run the command as the daemon's user (e.g. sudo -u ssid-anchor)", g.daemonErr)
		}
	}
	if code == exitInterrupted {
		fmt.Fprintln(w, "ssid-anchor: interrupted")
		return
	}
	msg := err.Error()
	fmt.Fprintf(w, "ssid-anchor: %s\n", strings.TrimSpace(msg))
	if hint != "" {
		fmt.Fprintf(w, "hint: %s\n", hint)
	}
}
