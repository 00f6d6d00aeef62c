package main

import (
	"context"
	"fmt"

	"github.com/ssid/ssid-anchor/node"
	"github.com/urfave/cli/v2"
)

type initOptions struct {
	Profile string
	Swarm   []string
}

func newInitCommand(g *globalOptions) *cli.Command {
	var o initOptions
	return &cli.Command{
		Name:  "init",
		Usage: "create the node repo (ed25519 identity, pinned-only providing); idempotent",
		Description: `Creates the IPFS repo under --repo. The air-gapped profile listens on loopback
only and dials nobody; the public profile joins the IPFS network as a DHT client.
Running it on an existing repo changes nothing and prints its peer ID (a repo
of another profile than asked for is named, with the command that switches it:
ssid-anchor config profile apply PROFILE). It writes <repo>/appliance.json,
every key at its default, when there is none; never over an existing one.

Exit codes: 0 created or already there, 1 failure, 2 bad flag.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "profile", Usage: "air-gapped or public (default: node.profile from the config)"},
			&cli.StringSliceFlag{Name: "swarm", Usage: "listen `MULTIADDR` (repeatable)"},
		},
		Action: func(c *cli.Context) error {
			o.Profile = c.String("profile")
			o.Swarm = c.StringSlice("swarm")
			return runInit(c.Context, o, g)
		},
	}
}

func runInit(_ context.Context, o initOptions, g *globalOptions) error {
	cfg := g.cfg.Node
	if o.Profile != "" {
		cfg.Profile = o.Profile
	}
	if len(o.Swarm) > 0 {
		cfg.Swarm = o.Swarm
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	res, err := node.Init(g.Repo, cfg)
	if err != nil {
		return err
	}
	// The appliance config, written when there is none (never over one),
	// so an operator has a file to read and edit (issue 21, item 4).
	wroteConfig := ""
	if g.ConfigFile == "" {
		path := g.configPath()
		wrote, err := writeDefaultConfig(path, res.Profile)
		if err != nil {
			return err
		}
		if wrote {
			wroteConfig = path
		}
	}
	if g.JSON {
		return writeJSON(g.stdout, map[string]any{"repo": g.Repo, "peer_id": res.PeerID, "profile": res.Profile, "created": res.Created, "config_written": wroteConfig})
	}
	if wroteConfig != "" {
		fmt.Fprintf(g.stderr, "wrote the default appliance config %s (check an edit with `ssid-anchor config check %s`)\n", wroteConfig, wroteConfig)
	}
	if res.Created {
		fmt.Fprintf(g.stdout, "initialised repo %s (profile %s)\n", g.Repo, res.Profile)
	} else {
		fmt.Fprintf(g.stdout, "repo %s already initialised (profile %s); nothing changed\n", g.Repo, res.Profile)
		if cfg.Profile != "" && cfg.Profile != res.Profile {
			// init never changes an existing repo (a script that runs it
			// at every boot must not switch a box online); it says how.
			from := "node.profile in " + g.configPath()
			if o.Profile != "" {
				from = "--profile"
			}
			fmt.Fprintf(g.stderr, "note: %s asks for profile %s, but the repo is %s; to switch it (identity and data kept) run `ssid-anchor config profile apply %s`\n", from, cfg.Profile, res.Profile, cfg.Profile)
		}
	}
	fmt.Fprintf(g.stdout, "peer id: %s\n", res.PeerID)
	return nil
}
