package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"

	"github.com/ipfs/go-cid"
	kuboconfig "github.com/ipfs/kubo/config"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
	"github.com/ssid/ssid-anchor/node"
)

// The daemon's kubo RPC API (SPEC 4.5): the stock `ipfs` CLI and scripts
// written for a separate `ipfs daemon` talk to the appliance's node.

// rpcAuthorizations reads each secret from the environment and turns the
// entries into kubo's API.Authorizations. Errors name the key and the
// variable, never the value.
func rpcAuthorizations(c appconfig.RPC, getenv func(string) string) (map[string]*kuboconfig.RPCAuthScope, error) {
	out := map[string]*kuboconfig.RPCAuthScope{}
	byHeader := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(c.Authorizations)) {
		a := c.Authorizations[name]
		key := "rpc.authorizations." + name
		secret := getenv(a.AuthSecretEnv)
		if secret == "" {
			return nil, usagef("%s.auth_secret_env: %s is not set in the daemon's environment (under systemd: /etc/ssid-anchor/env); set it or remove the authorization", key, a.AuthSecretEnv)
		}
		header := kuboconfig.ConvertAuthSecret(secret)
		if header == "" {
			return nil, usagef("%s: the value of %s is not one of kubo's AuthSecret forms: bearer:TOKEN, basic:USER:PASSWORD, basic:BASE64 or a bare token", key, a.AuthSecretEnv)
		}
		if other, dup := byHeader[header]; dup {
			return nil, usagef("%s: %s holds the same secret as rpc.authorizations.%s; each user needs a secret of its own", key, a.AuthSecretEnv, other)
		}
		byHeader[header] = name
		out[name] = &kuboconfig.RPCAuthScope{AuthSecret: secret, AllowedPaths: append([]string(nil), a.AllowedPaths...)}
	}
	return out, nil
}

// pinGuardHint ends a refused `ipfs pin rm`: anchors stay pinned while the
// daemon runs; an operator who means to drop one does it deliberately.
const pinGuardHint = "ssid-anchor keeps anchored content pinned while the daemon runs; to remove it anyway, stop the daemon and unpin with the ipfs CLI on the repo (then `ssid-anchor verify` reports those records as unpinned)"

// startRPC guards the node's pins and serves kubo's RPC API on rpc.listen.
// A config problem (missing secret, secrets in the repo's kubo config) is
// a usage error; a port already taken is an operational one.
func (d *daemon) startRPC() error {
	d.node.SetPinGuard(node.PinGuard{Protected: d.anchoredCIDs, Hint: pinGuardHint})
	cfg := d.config().RPC
	if cfg.Listen == "" {
		return d.node.RemoveStaleAPIFile()
	}
	auths, err := rpcAuthorizations(cfg, os.Getenv)
	if err != nil {
		return err
	}
	// A few kubo commands find the repo the way kubo's daemon process
	// does, from IPFS_PATH (`ipfs repo stat` reports it as RepoPath): in
	// this process it names the node's repo.
	if err := os.Setenv("IPFS_PATH", d.node.RepoPath()); err != nil {
		return fmt.Errorf("setting IPFS_PATH for kubo's commands: %w", err)
	}
	s, err := d.node.ServeRPC(cfg.Listen, node.RPCOptions{Authorizations: auths})
	switch {
	case errors.Is(err, node.ErrRPCSecretInRepoConfig):
		return usagef("%v: RPC secrets stay out of files here; remove it (with the daemon stopped: IPFS_PATH=%s ipfs config --json API.Authorizations '{}') and declare each user under rpc.authorizations in the appliance config, its secret in the variable auth_secret_env names", err, d.node.RepoPath())
	case err != nil:
		return fmt.Errorf("rpc.listen %s: %w (a separate `ipfs daemon` may still hold the port: stop it, or set rpc.listen to another address)", cfg.Listen, err)
	}
	d.rpc = s
	d.g.log.Info("kubo RPC API listening", "rpc", s.Addr(), "api_file", s.APIFile(), "authorizations", slices.Sorted(maps.Keys(cfg.Authorizations)))
	if m, _ := ma.NewMultiaddr(cfg.Listen); m != nil && !appconfig.LocalMultiaddr(m) && len(auths) == 0 {
		d.g.log.Warn("kubo's RPC API is served beyond loopback without rpc.authorizations: anyone who reaches it controls the node", "rpc", s.Addr())
	}
	return nil
}

// stopRPC removes <repo>/api and lets running RPC requests finish.
func (d *daemon) stopRPC(ctx context.Context) {
	if d.rpc == nil {
		return
	}
	if err := d.rpc.Close(ctx); err != nil {
		d.g.log.Warn("stopping the RPC API", "err", err)
	}
}

// anchoredCIDs is what the pin guard keeps pinned: the CID of every record
// of the tree's manifest, and every manifest of the chain this repo vouches
// for (verify reads them all). It holds the manifest lock, the one every
// anchoring run takes, until release: no run can record a new anchor
// between the check and the unpin.
func (d *daemon) anchoredCIDs(ctx context.Context) (map[string]string, func(), error) {
	paths := d.config().Paths
	root, err := tree.OpenRoot(d.g.Root)
	if err != nil {
		return nil, nil, err
	}
	unlock, err := root.LockDir(path.Dir(paths.Manifest))
	if err != nil {
		root.Close()
		if errors.Is(err, tree.ErrLocked) {
			return nil, nil, fmt.Errorf("an anchoring run holds the manifest; try again when it has finished")
		}
		return nil, nil, err
	}
	release := func() {
		unlock()
		root.Close()
	}
	out := map[string]string{}
	add := func(c, what string) {
		if prev, ok := out[c]; ok {
			what = prev + "; " + what
		}
		out[c] = what
	}
	var heads []string
	man, _, err := anchor.LoadManifestIn(root, paths.Manifest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		release()
		return nil, nil, err
	default:
		for _, r := range man.Records {
			add(r.IPFSCID, fmt.Sprintf("record %s, anchored %s", r.FilePath, r.AnchoredAt))
		}
		if man.PreviousCID != "" {
			heads = append(heads, man.PreviousCID)
		}
	}
	head, err := d.node.ChainHead()
	if err != nil {
		release()
		return nil, nil, err
	}
	if head != "" {
		heads = append([]string{head}, heads...)
	}
	seen := map[string]bool{}
	for _, h := range heads {
		if seen[h] {
			continue
		}
		hc, err := cid.Decode(h)
		if err != nil {
			release()
			return nil, nil, fmt.Errorf("manifest chain: %q is not a CID", h)
		}
		chain, ok, err := anchor.StoredChain(ctx, d.node, hc)
		if err != nil {
			release()
			return nil, nil, fmt.Errorf("reading the manifest chain from %s: %w", h, err)
		}
		if !ok {
			chain = []string{h}
		}
		for i, m := range chain {
			if seen[m] {
				break
			}
			seen[m] = true
			what := "the anchor manifest this repo last committed (chain head)"
			if m != head || i > 0 {
				what = "a manifest of the anchor manifest's chain (previous_manifest_cid)"
			}
			add(m, what)
		}
	}
	return out, release, nil
}

// statusRPC is the RPC API in `status`.
type statusRPC struct {
	Listen  string `json:"listen"`
	APIFile string `json:"api_file"`
}

func (d *daemon) rpcStatus() *statusRPC {
	if d.rpc == nil {
		return nil
	}
	return &statusRPC{Listen: d.rpc.Addr(), APIFile: d.rpc.APIFile()}
}
