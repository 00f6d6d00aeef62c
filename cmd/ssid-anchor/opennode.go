package main

import (
	"context"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
	"github.com/ssid/ssid-anchor/node"
)

// openNode gives a command the node it works on. A one-shot command opens
// the repo itself (and holds its lock until release); inside the daemon,
// g.shared is the daemon's open, online node and release does nothing, so
// the same command code runs in both places (SPEC 4.5).
//
// Every command that needs the repo must come through here, never call
// node.Open directly.
func (g *globalOptions) openNode(ctx context.Context, o node.OpenOptions) (*node.Node, func(), error) {
	if g.shared != nil {
		return g.shared, func() {}, nil
	}
	n, err := node.Open(ctx, g.Repo, o)
	if err != nil {
		return nil, nil, err
	}
	return n, func() { n.Close() }, nil
}

// opsEnv is the environment the command's operation runs with: the
// daemon's open node when the daemon serves the command.
func (g *globalOptions) opsEnv() ops.Env {
	e := ops.Env{Root: g.Root, Repo: g.Repo, Config: g.cfg, Log: g.log, Now: g.now, Getenv: g.getenv, Clock: g.clock}
	if g.shared != nil {
		e.Node = ops.SharedNode{N: g.shared}
	}
	return e
}
