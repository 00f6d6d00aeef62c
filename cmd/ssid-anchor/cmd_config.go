package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
	"github.com/ssid/ssid-anchor/node"
	"github.com/urfave/cli/v2"
)

// The config command makes the appliance config visible (issue 21, item 4;
// SPEC 3): `config check FILE` validates a file as every command reads
// it, `config show` prints the effective values and where each came from.

func newConfigCommand(g *globalOptions) *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "show the effective appliance config, check a config file, apply a node profile",
		Description: `config show prints every key of the appliance config (--config, default
<repo>/appliance.json) with its effective value and where it came from: the
built-in default or the file. Secrets are never in the config: keys ending in
_env name environment variables, and show says whether each is set here,
never its value.

config check FILE reads FILE exactly as every command does and says OK, or
names the file, the full key path and (for syntax) the line and column.

config profile apply NAME switches an existing repo to another node profile.

Exit codes: 0 ok, 1 failure, 2 bad config or argument, 3 repo locked or not initialised.`,
		Subcommands: []*cli.Command{
			{
				Name:      "show",
				Usage:     "print the effective config, the source of each value, and which secret variables are set",
				ArgsUsage: " ",
				Action: func(c *cli.Context) error {
					if c.Args().Present() {
						return usagef("config show takes no arguments (the file is --config)")
					}
					return runConfigShow(g)
				},
			},
			{
				Name:      "check",
				Usage:     "validate an appliance config file (exit 2 naming the key on an error)",
				ArgsUsage: "FILE",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usagef("config check takes one FILE, got %d arguments", c.NArg())
					}
					return runConfigCheck(g, c.Args().First())
				},
			},
			newConfigProfileCommand(g),
		},
	}
}

// configCheckRequested: `config check FILE` reads its own file, so the
// default config (perhaps the broken file being fixed) is not loaded first.
func configCheckRequested(c *cli.Context) bool {
	a := c.Args().Slice()
	return len(a) >= 2 && a[0] == "config" && a[1] == "check"
}

func runConfigCheck(g *globalOptions, path string) error {
	cfg, err := appconfig.Load(path, true)
	if err != nil {
		return err
	}
	doc, err := keysInFile(path)
	if err != nil {
		return err
	}
	set := 0
	flatten(doc, "", func(string, any) { set++ })
	if g.JSON {
		return writeJSON(g.stdout, map[string]any{"file": path, "ok": true, "keys_set": set})
	}
	fmt.Fprintf(g.stdout, "%s: OK (%d keys set, every other key at its default)\n", path, set)
	for _, s := range secretEnvs(cfg) {
		if g.env(s.Env) == "" {
			fmt.Fprintf(g.stderr, "note: %s names %s, which is not set in this environment\n", s.Key, s.Env)
		}
	}
	return nil
}

// configEntry is one leaf of the effective config.
type configEntry struct {
	Key    string `json:"key"`
	Value  any    `json:"value"`
	Source string `json:"source"`
}

// secretEnv is a key that names an environment variable holding a secret.
type secretEnv struct {
	Key string `json:"key"`
	Env string `json:"env"`
	Set bool   `json:"set"`
}

// setting is a global setting that decides which config is read.
type setting struct {
	Value  string `json:"value"`
	Source string `json:"source"`
}

func runConfigShow(g *globalOptions) error {
	path := g.configPath()
	fileSrc := "file " + path
	cfg := g.cfg
	inFile, err := keysInFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && g.ConfigFile == "":
		fileSrc = ""
	case err != nil:
		return err
	}
	var doc map[string]any
	b, _ := json.Marshal(cfg)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("internal: re-reading the config: %w", err)
	}
	maskSecrets(doc, "")
	var entries []configEntry
	flatten(doc, "", func(key string, v any) {
		src := "default"
		if fileSrc != "" && fromFile(inFile, key) {
			src = fileSrc
		}
		entries = append(entries, configEntry{Key: key, Value: v, Source: src})
	})
	secrets := secretEnvs(cfg)
	for i := range secrets {
		secrets[i].Set = g.env(secrets[i].Env) != ""
	}
	settings := map[string]setting{
		"repo":   globalSetting(g.Repo, defaultRepo(), "--repo", "SSID_ANCHOR_REPO", g),
		"root":   globalSetting(g.Root, ".", "--root", "SSID_ROOT", g),
		"config": {Value: path, Source: "default: <repo>/appliance.json"},
	}
	if g.ConfigFile != "" {
		settings["config"] = setting{Value: path, Source: "flag --config"}
	}
	if g.JSON {
		return writeJSON(g.stdout, map[string]any{
			"file": path, "file_exists": fileSrc != "", "settings": settings,
			"config": doc, "keys": entries, "secret_env": secrets,
		})
	}
	w := g.stdout
	for _, k := range []string{"repo", "root", "config"} {
		fmt.Fprintf(w, "# %-6s %s (%s)\n", k, settings[k].Value, settings[k].Source)
	}
	if fileSrc == "" {
		fmt.Fprintf(w, "# %s does not exist: every key is at its default (ssid-anchor init writes one)\n", path)
	}
	width := 0
	for _, e := range entries {
		width = max(width, len(e.Key))
	}
	for _, e := range entries {
		v, _ := json.Marshal(e.Value)
		fmt.Fprintf(w, "%-*s = %s  # %s\n", width, e.Key, v, e.Source)
	}
	if len(secrets) > 0 {
		fmt.Fprintln(w, "# secrets (environment variables; values never shown):")
		for _, s := range secrets {
			state := "not set in this environment"
			if s.Set {
				state = "set"
			}
			fmt.Fprintf(w, "#   %s = %s: %s\n", s.Key, s.Env, state)
		}
	}
	return nil
}

// globalSetting says where --repo or --root came from. urfave/cli does
// not tell a flag from its variable, so a value equal to the variable's is
// put down to the variable.
func globalSetting(v, def, flag, env string, g *globalOptions) setting {
	switch {
	case g.env(env) != "" && v == g.env(env):
		return setting{v, "env " + env}
	case v == def:
		return setting{v, "default"}
	}
	return setting{v, "flag " + flag}
}

// keysInFile reads the file's keys as a document (the file has been
// validated: Load read it).
func keysInFile(path string) (map[string]any, error) {
	b, err := appconfig.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// fromFile says whether the file holds key (or a list it is part of: a
// list in the file replaces the default list whole).
func fromFile(doc map[string]any, key string) bool {
	var cur any = doc
	for _, part := range splitKey(key) {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[part]
			if !ok {
				return false
			}
			cur = v
		case []any:
			return true
		default:
			return false
		}
	}
	return true
}

// splitKey splits a.b[0].c into a, b, [0], c.
func splitKey(key string) []string {
	var out []string
	for _, p := range strings.Split(key, ".") {
		name, idx, _ := strings.Cut(p, "[")
		out = append(out, name)
		if idx != "" {
			for _, i := range strings.Split(idx, "[") {
				out = append(out, "["+i)
			}
		}
	}
	return out
}

// flatten calls f for every leaf of doc: scalars, lists of scalars and
// empty objects; lists of objects are numbered.
func flatten(v any, key string, f func(string, any)) {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 0 && key != "" {
			f(key, v)
			return
		}
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range v {
				if k != "_comment" && !yield(k) {
					return
				}
			}
		}) {
			p := k
			if key != "" {
				p = key + "." + k
			}
			flatten(v[k], p, f)
		}
	case []any:
		for _, e := range v {
			if _, ok := e.(map[string]any); ok {
				for i, e := range v {
					flatten(e, key+"["+strconv.Itoa(i)+"]", f)
				}
				return
			}
		}
		f(key, v)
	default:
		f(key, v)
	}
}

// maskSecrets replaces anything in doc that could be a secret: a value
// under a key that names a token, secret, password or authorization (the
// config holds only variable names, under keys ending in _env, so this
// catches a future key that does not), and the password or query of a URL.
func maskSecrets(v any, key string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			lk := strings.ToLower(k)
			if s, ok := e.(string); ok {
				if isSecretKey(lk) && s != "" {
					v[k] = "***"
				} else {
					v[k] = maskURL(s)
				}
				continue
			}
			maskSecrets(e, k)
		}
	case []any:
		for i, e := range v {
			if s, ok := e.(string); ok {
				v[i] = maskURL(s)
				continue
			}
			maskSecrets(e, key)
		}
	}
}

func isSecretKey(k string) bool {
	if strings.HasSuffix(k, "_env") {
		return false
	}
	for _, w := range []string{"token", "secret", "password", "passwd", "authorization", "api_key", "apikey"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// maskURL hides a URL's password and query (where tokens ride); other
// strings are returned as they are.
func maskURL(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "***")
	}
	if u.RawQuery != "" {
		u.RawQuery = "***"
	}
	return strings.Replace(u.String(), "%2A%2A%2A", "***", 1)
}

// secretEnvs lists the keys that name secret variables, in file order.
func secretEnvs(cfg appconfig.Config) []secretEnv {
	var out []secretEnv
	for i, s := range cfg.RemotePinning.Services {
		k := fmt.Sprintf("remote_pinning.services[%d]", i)
		for _, e := range []struct{ key, env string }{{"token_env", s.TokenEnv}, {"auth_secret_env", s.AuthSecretEnv}, {"authorization_env", s.AuthorizationEnv}} {
			if e.env != "" {
				out = append(out, secretEnv{Key: k + "." + e.key, Env: e.env})
			}
		}
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range cfg.RPC.Authorizations {
			if !yield(n) {
				return
			}
		}
	}) {
		out = append(out, secretEnv{Key: "rpc.authorizations." + name + ".auth_secret_env", Env: cfg.RPC.Authorizations[name].AuthSecretEnv})
	}
	return out
}

// defaultConfigFile is the appliance config init writes when there is
// none: every key at its default, and a _comment (JSON has none) that says
// where the keys are explained and how to check the file.
func defaultConfigFile(profile string) ([]byte, error) {
	c := appconfig.Default()
	if profile != "" {
		c.Node.Profile = profile
	}
	c.Comment = []string{
		"ssid-anchor appliance config, written by `ssid-anchor init` with every key at its default.",
		"Each key is explained in README.md, section \"Appliance config\"; delete a key to use its default.",
		"Check an edited file with `ssid-anchor config check FILE`; `ssid-anchor config show` prints the effective values.",
		"Secrets never go here: keys ending in _env name the environment variable that holds one.",
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// writeDefaultConfig writes the default config at path unless a file is
// there: it is created under a temporary name, synced, and linked into
// place, which fails if anything exists at path, so an existing config is
// never overwritten, not even by a concurrent init. It says whether it
// wrote.
func writeDefaultConfig(path, profile string) (bool, error) {
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	}
	b, err := defaultConfigFile(profile)
	if err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".appliance-*.json")
	if err != nil {
		return false, fmt.Errorf("writing the default config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return false, fmt.Errorf("writing the default config: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, fmt.Errorf("writing the default config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("writing the default config: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("writing the default config %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return true, nil
}

func newConfigProfileCommand(g *globalOptions) *cli.Command {
	return &cli.Command{
		Name:  "profile",
		Usage: "change the node profile of an existing repo",
		Subcommands: []*cli.Command{{
			Name:      "apply",
			Usage:     "switch the repo to a profile (air-gapped or public), keeping its identity and data",
			ArgsUsage: "PROFILE",
			Description: `Sets the repo's kubo config keys that tell the profiles apart (addresses,
bootstrap peers, routing, discovery, transports) to what init writes for
PROFILE, as ipfs config profile apply does; the identity, the blocks, the pins
and every other key stay. It prints each key it changed, and nothing when the
repo is already so (it is safe to run again). It starts no node: a running
daemon holds the repo (exit 3); stop it, apply, start it.`,
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "dry-run", Usage: "print what would change and change nothing"},
				&cli.StringSliceFlag{Name: "swarm", Usage: "listen `MULTIADDR` instead of the profile's (repeatable)"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return usagef("config profile apply takes one PROFILE (air-gapped or public), got %d arguments", c.NArg())
				}
				p := c.Args().First()
				if p != node.ProfileAirGapped && p != node.ProfilePublic {
					return usagef("profile %q: use %q or %q", p, node.ProfileAirGapped, node.ProfilePublic)
				}
				return runProfileApply(g, p, c.StringSlice("swarm"), c.Bool("dry-run"))
			},
		}},
	}
}

func runProfileApply(g *globalOptions, profile string, swarm []string, dryRun bool) error {
	res, err := node.ApplyProfile(g.Repo, profile, swarm, dryRun)
	if err != nil {
		return err
	}
	printProfileResult(g, res, dryRun)
	return nil
}

// printProfileResult prints what a profile change did: each kubo config
// key with its old and new value.
func printProfileResult(g *globalOptions, res node.ProfileResult, dryRun bool) {
	if g.JSON {
		writeJSON(g.stdout, map[string]any{"repo": g.Repo, "peer_id": res.PeerID, "from": res.From, "to": res.To, "changes": res.Changes, "dry_run": dryRun})
		return
	}
	w := g.stdout
	if len(res.Changes) == 0 && res.From == res.To {
		fmt.Fprintf(w, "repo %s is already profile %s; nothing changed\n", g.Repo, res.To)
		return
	}
	verb := "switched"
	if dryRun {
		verb = "would switch"
	}
	fmt.Fprintf(w, "repo %s: %s from profile %s to %s (peer id %s kept)\n", g.Repo, verb, res.From, res.To, res.PeerID)
	for _, c := range res.Changes {
		fmt.Fprintf(w, "  %s: %s -> %s\n", c.Key, kuboValue(c.Old), kuboValue(c.New))
	}
	if !dryRun {
		fmt.Fprintln(g.stderr, "a running daemon takes the new profile when it is started again")
	}
	if g.cfg.Node.Profile != "" && g.cfg.Node.Profile != res.To {
		fmt.Fprintf(g.stderr, "note: node.profile in %s is still %s (it is only init's choice for a new repo); set it to %s to keep them alike\n", g.configPath(), g.cfg.Node.Profile, res.To)
	}
}

// kuboValue prints a kubo config value; nil is a key that is absent (or
// null: kubo reads both as its default).
func kuboValue(v any) string {
	if v == nil {
		return "(unset)"
	}
	b, _ := json.Marshal(v)
	return string(b)
}
