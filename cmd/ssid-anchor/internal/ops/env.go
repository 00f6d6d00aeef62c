// Package ops holds the operations of the appliance: the verbs that both a
// command and a daemon job run. Each is a function over one Env plus its
// options, returning a result. An operation prints nothing itself: what a
// command shows while the work runs goes to the writers and callbacks it is
// handed (Env.Log, a progress callback in its options), and the
// command prints the result. It stands below the commands and the daemon
// and imports neither (only anchor, node, telemetry, scheduler and
// internal/appconfig).
package ops

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
	"github.com/ssid/ssid-anchor/node"
	"github.com/ssid/ssid-anchor/scheduler"
)

// Env is what every operation runs with: one value, built by a command for
// a one-shot process, or by the daemon for the commands it serves.
type Env struct {
	// Root is the governance tree, Repo the node's repo.
	Root, Repo string
	Config     appconfig.Config
	// Log takes the operation's log lines; nil discards them.
	Log *slog.Logger
	// Now is the time (UTC) stamped into what an operation writes; nil is
	// the wall clock's.
	Now func() time.Time
	// Node gives the operation its node: a one-shot process opens the repo
	// (RepoNode), the daemon hands out its open one (SharedNode). nil is
	// RepoNode(Repo).
	Node NodeOpener
	// Getenv reads the environment; inside the daemon the client's
	// secrets come first. nil is os.Getenv.
	Getenv func(string) string
	// Clock is what waits run on (notification retries); nil is the
	// wall clock.
	Clock scheduler.Clock
}

// NodeOpener gives an operation the node it works on. Every operation that
// needs the repo comes through it, never node.Open directly, so the same
// code runs in a one-shot process and inside the daemon (SPEC 4.5).
type NodeOpener interface {
	// Open returns the node and its release.
	Open(ctx context.Context, o node.OpenOptions) (*node.Node, func(), error)
}

// RepoNode opens the repo at its path and holds the repo lock until
// release: a one-shot process.
type RepoNode string

// Open implements NodeOpener.
func (r RepoNode) Open(ctx context.Context, o node.OpenOptions) (*node.Node, func(), error) {
	n, err := node.Open(ctx, string(r), o)
	if err != nil {
		return nil, nil, err
	}
	return n, func() { n.Close() }, nil
}

// SharedNode is the daemon's open, online node: release does nothing.
type SharedNode struct{ N *node.Node }

// Open implements NodeOpener.
func (s SharedNode) Open(context.Context, node.OpenOptions) (*node.Node, func(), error) {
	return s.N, func() {}, nil
}

// UsageError marks a bad flag, argument or config value: the command exits
// 2. It says what its cause says.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef is a UsageError made like fmt.Errorf.
func Usagef(format string, a ...any) error { return UsageError{fmt.Errorf(format, a...)} }

func (e Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now().UTC()
}

func (e Env) getenv(k string) string {
	if e.Getenv != nil {
		return e.Getenv(k)
	}
	return os.Getenv(k)
}

func (e Env) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (e Env) open(ctx context.Context, o node.OpenOptions) (*node.Node, func(), error) {
	if e.Node != nil {
		return e.Node.Open(ctx, o)
	}
	return RepoNode(e.Repo).Open(ctx, o)
}
