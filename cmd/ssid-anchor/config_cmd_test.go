package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
	"github.com/ssid/ssid-anchor/node"
)

// TestConfigCheck: `config check FILE` says OK with exit 0 for a good file
// and exits 2 naming the file, the full key path and the position for a
// bad one, even when the default config (the one being fixed) is broken
// too; the hint points to config check and the README, not to help (issue
// 21, item 4). On main's code there is no config command (exit 2, "No
// help topic").
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	mustMkdir(t, repo)
	// The repo's own config is broken: check must still read only FILE.
	mustWrite(t, filepath.Join(repo, "appliance.json"), []byte(`{"nope": 1}`))
	good := filepath.Join(dir, "good.json")
	mustWrite(t, good, []byte(`{"anchor": {"gateway_base": "https://gw.example/ipfs/"}, "http": {"listen": "127.0.0.1:9000"}}`))
	code, out, errb := runCLI(t, "--repo", repo, "config", "check", good)
	if code != exitOK || out != good+": OK (2 keys set, every other key at its default)\n" {
		t.Fatalf("check good: exit %d, stdout %q, stderr %q", code, out, errb)
	}
	code, out, _ = runCLI(t, "--repo", repo, "config", "check", good, "--json")
	var res struct {
		File    string `json:"file"`
		OK      bool   `json:"ok"`
		KeysSet int    `json:"keys_set"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || !res.OK || res.File != good || res.KeysSet != 2 {
		t.Fatalf("check --json: exit %d, %q", code, out)
	}

	bad := filepath.Join(dir, "appliance.json")
	mustWrite(t, bad, []byte("{\n  \"anchor\": {\n    \"gateway_bsae\": \"https://gw.example/ipfs/\"\n  }\n}\n"))
	code, out, errb = runCLI(t, "--repo", repo, "config", "check", bad)
	want := bad + `: line 3, column 5: unknown key "anchor.gateway_bsae"; did you mean "anchor.gateway_base"?`
	if code != exitUsage || out != "" || !strings.Contains(errb, want) || !strings.Contains(errb, "hint: check the file with `ssid-anchor config check FILE`") || strings.Contains(errb, "ssid-anchor help") {
		t.Fatalf("check bad: exit %d, stdout %q, stderr %q; want exit 2 and %q", code, out, errb, want)
	}
	syntax := filepath.Join(dir, "syntax.json")
	mustWrite(t, syntax, []byte("{\n  \"http\": {\"listen\": \"127.0.0.1:1\",}\n}\n"))
	if code, _, errb := runCLI(t, "--repo", repo, "config", "check", syntax); code != exitUsage || !strings.Contains(errb, syntax+": line 2, column 36: invalid character '}'") {
		t.Fatalf("check syntax: exit %d, stderr %q", code, errb)
	}
	invalid := filepath.Join(dir, "invalid.json")
	mustWrite(t, invalid, []byte(`{"node": {"profile": "open"}}`))
	if code, _, errb := runCLI(t, "--repo", repo, "config", "check", invalid); code != exitUsage || !strings.Contains(errb, invalid+": node.profile") {
		t.Fatalf("check invalid: exit %d, stderr %q", code, errb)
	}
	if code, _, errb := runCLI(t, "--repo", repo, "config", "check", filepath.Join(dir, "missing.json")); code != exitUsage || !strings.Contains(errb, "missing.json") {
		t.Fatalf("check missing: exit %d, stderr %q", code, errb)
	}
	if code, _, _ := runCLI(t, "--repo", repo, "config", "check"); code != exitUsage {
		t.Fatalf("check without FILE: exit %d", code)
	}
	// Every other command still refuses the broken default config, with
	// the new hint.
	if code, _, errb := runCLI(t, "--repo", repo, "status"); code != exitUsage || !strings.Contains(errb, `unknown key "nope"`) || !strings.Contains(errb, "config check FILE") {
		t.Fatalf("status on a broken config: exit %d, stderr %q", code, errb)
	}
}

// TestConfigShow: the effective config with the source of every value
// (default, the file, and the flag or variable that chose the repo), env
// variable names for secrets with whether each is set, never a secret's
// value (issue 21, item 4).
func TestConfigShow(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "appliance.json")
	const secret = "s3cr3t-token-value-never-shown"
	t.Setenv("I21C_PIN_TOKEN", secret)
	t.Setenv("I21C_RPC_SECRET", "")
	mustWrite(t, cfg, []byte(`{
  "_comment": "test config",
  "anchor": {"gateway_base": "https://user:hunter2@gw.example/ipfs/?key=abc"},
  "remote_pinning": {"services": [{"name": "pinata", "endpoint": "https://api.pinata.example/psa", "token_env": "I21C_PIN_TOKEN"}]},
  "rpc": {"authorizations": {"ci": {"auth_secret_env": "I21C_RPC_SECRET", "allowed_paths": ["/api/v0/pin/ls"]}}}
}`))
	code, out, errb := runCLI(t, "--repo", filepath.Join(dir, "repo"), "--config", cfg, "config", "show")
	if code != exitOK {
		t.Fatalf("show: exit %d, stderr %q", code, errb)
	}
	for _, want := range []string{
		"# config " + cfg + " (flag --config)",
		"# repo   " + filepath.Join(dir, "repo") + " (flag --repo)",
		`anchor.gateway_base`, `"https://user:***@gw.example/ipfs/?***"  # file ` + cfg,
		`anchor.cid_profile`, `"kubo-default"  # default`,
		`remote_pinning.services[0].token_env`, `"I21C_PIN_TOKEN"  # file ` + cfg,
		`http.listen`, `"127.0.0.1:8089"  # default`,
		"remote_pinning.services[0].token_env = I21C_PIN_TOKEN: set",
		"rpc.authorizations.ci.auth_secret_env = I21C_RPC_SECRET: not set in this environment",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	for _, leak := range []string{secret, "hunter2", "key=abc", "_comment"} {
		if strings.Contains(out+errb, leak) {
			t.Errorf("show prints %q:\n%s", leak, out)
		}
	}

	t.Setenv("SSID_ANCHOR_REPO", filepath.Join(dir, "envrepo"))
	code, out, errb = runCLI(t, "--config", cfg, "config", "show", "--json")
	var doc struct {
		File     string                     `json:"file"`
		Settings map[string]setting         `json:"settings"`
		Config   map[string]json.RawMessage `json:"config"`
		Keys     []configEntry              `json:"keys"`
		Secrets  []secretEnv                `json:"secret_env"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &doc) != nil {
		t.Fatalf("show --json: exit %d, %q, stderr %q", code, out, errb)
	}
	if doc.Settings["repo"].Source != "env SSID_ANCHOR_REPO" || doc.File != cfg {
		t.Errorf("show --json settings %+v, file %s", doc.Settings, doc.File)
	}
	sources := map[string]string{}
	for _, e := range doc.Keys {
		sources[e.Key] = e.Source
	}
	if sources["anchor.gateway_base"] != "file "+cfg || sources["anchor.blueprint_version"] != "default" || sources["rpc.authorizations.ci.allowed_paths"] != "file "+cfg {
		t.Errorf("show --json sources: %v", sources)
	}
	if len(doc.Secrets) != 2 || !doc.Secrets[0].Set || doc.Secrets[1].Set || doc.Secrets[0].Env != "I21C_PIN_TOKEN" {
		t.Errorf("show --json secret_env: %+v", doc.Secrets)
	}
	if strings.Contains(out, secret) || strings.Contains(out, "hunter2") {
		t.Errorf("show --json leaks a secret: %s", out)
	}

	// Without a file: every key is a default, and show says so.
	code, out, _ = runCLI(t, "--repo", filepath.Join(dir, "none"), "config", "show")
	if code != exitOK || !strings.Contains(out, "does not exist: every key is at its default") || strings.Contains(out, "# file") {
		t.Fatalf("show without a file: exit %d\n%s", code, out)
	}
}

// TestInitWritesDefaultConfig: init writes <repo>/appliance.json when
// there is none: every key at its default, a _comment pointing to the
// README and config check, readable by the strict reader; it never
// overwrites an existing file, and writes nothing when --config names one
// (issue 21, item 4). On main's code init wrote no config.
func TestInitWritesDefaultConfig(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	code, _, errb := runCLI(t, "--repo", repo, "init")
	cfgPath := filepath.Join(repo, "appliance.json")
	if code != exitOK || !strings.Contains(errb, "wrote the default appliance config "+cfgPath) {
		t.Fatalf("init: exit %d, stderr %q", code, errb)
	}
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := appconfig.Load(cfgPath, true)
	if err != nil {
		t.Fatalf("the written config does not load: %v", err)
	}
	if len(got.Comment) == 0 || !strings.Contains(string(b), "config check FILE") || !strings.Contains(string(b), `README.md, section \"Appliance config\"`) {
		t.Errorf("the written config has no useful _comment:\n%s", b)
	}
	got.Comment = nil
	if !reflect.DeepEqual(got, appconfig.Default()) {
		t.Errorf("the written config is not the defaults:\n%s", b)
	}
	if code, out, _ := runCLI(t, "--repo", repo, "config", "check", cfgPath); code != exitOK || !strings.Contains(out, "OK") {
		t.Fatalf("config check of the written config: exit %d %q", code, out)
	}
	// An existing config (the operator's edit) is never overwritten.
	edited := []byte(`{"http": {"listen": "127.0.0.1:9999"}}`)
	mustWrite(t, cfgPath, edited)
	code, out, errb := runCLI(t, "--repo", repo, "init", "--json")
	var res struct {
		Created       bool   `json:"created"`
		ConfigWritten string `json:"config_written"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || res.Created || res.ConfigWritten != "" {
		t.Fatalf("second init: exit %d, %q, stderr %q", code, out, errb)
	}
	if b, _ := os.ReadFile(cfgPath); string(b) != string(edited) {
		t.Fatalf("init overwrote the config: %s", b)
	}
	// A public repo's config says public.
	pub := filepath.Join(dir, "pub")
	if code, _, errb := runCLI(t, "--repo", pub, "init", "--profile", "public"); code != exitOK {
		t.Fatalf("init public: %d %s", code, errb)
	}
	if c, err := appconfig.Load(filepath.Join(pub, "appliance.json"), true); err != nil || c.Node.Profile != "public" {
		t.Fatalf("public repo's config: profile %q, %v", c.Node.Profile, err)
	}
	// --config names the file: init writes none in the repo.
	other := filepath.Join(dir, "other.json")
	mustWrite(t, other, []byte(`{}`))
	if code, _, errb := runCLI(t, "--repo", filepath.Join(dir, "r3"), "--config", other, "init"); code != exitOK || strings.Contains(errb, "wrote") {
		t.Fatalf("init --config: %d %s", code, errb)
	}
	if _, err := os.Stat(filepath.Join(dir, "r3", "appliance.json")); err == nil {
		t.Fatal("init --config FILE wrote <repo>/appliance.json")
	}
}

// TestProfileApply: `config profile apply public` on an air-gapped repo
// rewrites the repo's kubo config (the peer ID kept), prints each key it
// changed, and changes nothing the second time; `init --profile` on an
// existing repo of another profile changes nothing but names the command.
// Only the config is
// rewritten and checked: no node goes online (issue 21, item 4). On main's
// code there is no such command and `init --profile public` said "nothing
// changed".
func TestProfileApply(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	code, out, errb := runCLI(t, "--repo", repo, "init")
	if code != exitOK {
		t.Fatalf("init: %d %s", code, errb)
	}
	// init's result on stdout is two lines since i21o ("initialised repo
	// ...", then "peer id: ..."): the peer ID is the second's.
	peer := ""
	for _, l := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(l, "peer id: "); ok {
			peer = strings.TrimSpace(p)
		}
	}
	readRepoConf := func() map[string]any {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(repo, "config"))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	routing := func() any { return readRepoConf()["Routing"].(map[string]any)["Type"] }
	if routing() != "none" {
		t.Fatalf("air-gapped repo routing %v", routing())
	}

	// A dry run changes nothing.
	code, out, errb = runCLI(t, "--repo", repo, "config", "profile", "apply", "--dry-run", "public")
	if code != exitOK || !strings.Contains(out, "would switch from profile air-gapped to public") || routing() != "none" {
		t.Fatalf("dry run: exit %d, %q %q, routing %v", code, out, errb, routing())
	}
	code, out, errb = runCLI(t, "--repo", repo, "config", "profile", "apply", "public")
	if code != exitOK || !strings.Contains(out, "switched from profile air-gapped to public (peer id "+peer+" kept)") ||
		!strings.Contains(out, `  Routing.Type: "none" -> "dhtclient"`) || !strings.Contains(out, `  Bootstrap: [] -> [`) {
		t.Fatalf("apply public: exit %d\n%s\n%s", code, out, errb)
	}
	conf := readRepoConf()
	if routing() != "dhtclient" || conf["Identity"].(map[string]any)["PeerID"] != peer {
		t.Fatalf("after apply: routing %v, identity %v", routing(), conf["Identity"])
	}
	if b, _ := os.ReadFile(filepath.Join(repo, "ssid-anchor-profile")); string(b) != "public\n" {
		t.Fatalf("recorded profile %q", b)
	}
	// The config the init wrote still says air-gapped: the command says so.
	if !strings.Contains(errb, "node.profile in "+filepath.Join(repo, "appliance.json")+" is still air-gapped") {
		t.Errorf("no note about node.profile: %q", errb)
	}
	// Idempotent.
	if code, out, _ := runCLI(t, "--repo", repo, "config", "profile", "apply", "public"); code != exitOK || out != "repo "+repo+" is already profile public; nothing changed\n" {
		t.Fatalf("second apply: exit %d %q", code, out)
	}
	// init's result (the repo and its state) is on stdout since i21o.
	if code, out, _ := runCLI(t, "--repo", repo, "init", "--profile", "public"); code != exitOK || !strings.Contains(out, "already initialised (profile public); nothing changed") {
		t.Fatalf("init --profile public on a public repo: exit %d %q", code, out)
	}
	// init --profile of the other profile changes nothing (a script that
	// runs init at every boot must not switch the box) but says how.
	code, _, errb = runCLI(t, "--repo", repo, "init", "--profile", "air-gapped")
	if code != exitOK || !strings.Contains(errb, "note: --profile asks for profile air-gapped, but the repo is public; to switch it (identity and data kept) run `ssid-anchor config profile apply air-gapped`") || routing() != "dhtclient" {
		t.Fatalf("init --profile air-gapped on a public repo: exit %d %q, routing %v", code, errb, routing())
	}
	code, out, errb = runCLI(t, "--repo", repo, "config", "profile", "apply", "air-gapped", "--json")
	var res struct {
		PeerID  string               `json:"peer_id"`
		From    string               `json:"from"`
		To      string               `json:"to"`
		Changes []node.ProfileChange `json:"changes"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || res.PeerID != peer || res.From != "public" || res.To != "air-gapped" || len(res.Changes) == 0 {
		t.Fatalf("apply air-gapped --json: exit %d %q %q", code, out, errb)
	}
	if routing() != "none" {
		t.Fatalf("routing after switching back: %v", routing())
	}
	// The repo still opens (offline) with its data: status reads it.
	if code, out, errb := runCLI(t, "--repo", repo, "--root", newTree(t), "status"); code != exitOK || !strings.Contains(out+errb, peer) {
		t.Fatalf("status after the switches: exit %d\n%s\n%s", code, out, errb)
	}
	for _, args := range [][]string{{"config", "profile", "apply"}, {"config", "profile", "apply", "open"}} {
		if code, _, _ := runCLI(t, append([]string{"--repo", repo}, args...)...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, _ := runCLI(t, "--repo", filepath.Join(dir, "none"), "config", "profile", "apply", "public"); code != exitRepo {
		t.Errorf("apply on no repo: exit %d, want 3", code)
	}
}

// TestProfileApplyLockedRepo: while another process (a daemon, a command)
// holds the repo, apply (the built binary, a process of its own: kubo
// shares one lock within a process) changes nothing and exits 3.
func TestProfileApplyLockedRepo(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	if code, _, errb := runCLI(t, "--repo", repo, "init"); code != exitOK {
		t.Fatalf("init: %s", errb)
	}
	before, err := os.ReadFile(filepath.Join(repo, "config"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(context.Background(), repo, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(anchorBinary(t), "--repo", repo, "config", "profile", "apply", "public")
	out, _ := cmd.CombinedOutput()
	n.Close()
	if code := cmd.ProcessState.ExitCode(); code != exitRepo || !strings.Contains(string(out), "locked") {
		t.Fatalf("apply on a held repo: exit %d %q, want 3", code, out)
	}
	if after, _ := os.ReadFile(filepath.Join(repo, "config")); string(after) != string(before) {
		t.Fatal("apply on a held repo changed its config")
	}
}
