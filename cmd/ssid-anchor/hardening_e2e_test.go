package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor"
)

func recordedPaths(t testing.TB, root string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, r := range readManifest(t, root).Records {
		out[r.FilePath]++
	}
	return out
}

// TestAnchorBadRulesMoveNothing: an unknown placeholder, an invalid glob or
// `rules: []` is a config error (exit 2) naming the key; nothing moves, so
// once the config is fixed the same events are anchored.
func TestAnchorBadRulesMoveNothing(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	mustWrite(t, filepath.Join(root, "07_governance_legal/policies/a/b/policy.yaml"), []byte("policy: 1\n"))
	before, _ := os.ReadFile(filepath.Join(root, tManifest))
	for _, tc := range []struct{ name, rules, want string }{
		{"unknown placeholder", `[{"match":["*"],"globs":["{nosuchvar}"]}]`, "{nosuchvar}"},
		{"invalid glob", `[{"match":["*"],"globs":["["]}]`, "anchor.rules[0].globs[0]"},
		{"no rules", `[]`, "anchor.rules"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, `{"anchor":{"rules":`+tc.rules+`}}`)
			code, _, stderr := runCLI(t, "--root", root, "--repo", repo, "--config", cfg, "anchor")
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d (want 2), stderr does not name %q: %s", code, tc.want, stderr)
			}
			if after, _ := os.ReadFile(filepath.Join(root, tManifest)); !bytes.Equal(before, after) {
				t.Fatal("the manifest changed although the config was refused")
			}
		})
	}
	cfg := writeConfig(t, `{"anchor":{"rules":[{"match":["*"],"globs":["{events_log}","07_governance_legal/**/*.yaml"]}]}}`)
	code, out, stderr := runCLI(t, "--json", "--root", root, "--repo", repo, "--config", cfg, "anchor")
	var res anchor.Result
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("fixed config: exit %d: %s%s", code, out, stderr)
	}
	if res.NewEvents != 12 || recordedPaths(t, root)["07_governance_legal/policies/a/b/policy.yaml"] != 1 {
		t.Fatalf("after fixing the config the events were not all there or ** did not reach the policy: %+v", res)
	}
}

// TestAnchorUnmatchedGlobAndReprocess: a glob that matches nothing is
// reported per event (human and JSON); after the rules are fixed,
// --reprocess takes the past events again, skipping content already
// anchored.
func TestAnchorUnmatchedGlobAndReprocess(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	wrong := writeConfig(t, `{"anchor":{"rules":[{"match":["*"],"globs":["{events_log}"]},{"match":["blueprint"],"globs":["07_governance_legal/**/*.yml"]}]}}`)
	code, out, stderr := runCLI(t, "--json", "--root", root, "--repo", repo, "--config", wrong, "anchor")
	var res anchor.Result
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("exit %d: %s %s", code, out, stderr)
	}
	if len(res.Unmatched) == 0 {
		t.Fatalf("no unmatched glob reported: %s", out)
	}
	for _, u := range res.Unmatched {
		if u.Glob != "07_governance_legal/**/*.yml" || !strings.Contains(u.Event, "blueprint") || u.Line == 0 || len(u.ProofAnchor) != 64 || u.Rule != 1 {
			t.Errorf("unmatched entry %+v", u)
		}
	}
	// Human output says it on stderr too.
	code, _, _ = runCLI(t, "--root", root, "event", "--event", "blueprint_tagged", "--version", "v9", "--hash", "h")
	if code != 0 {
		t.Fatalf("event: exit %d", code)
	}
	code, _, stderr = runCLI(t, "--root", root, "--repo", repo, "--config", wrong, "anchor")
	if code != 0 || !strings.Contains(stderr, `glob "07_governance_legal/**/*.yml" matched no file`) || !strings.Contains(stderr, "blueprint_tagged") {
		t.Fatalf("human output: exit %d: %s", code, stderr)
	}

	// The rules are fixed, and the files exist now: a plain run has no new
	// events, --reprocess all takes them again.
	mustWrite(t, filepath.Join(root, "07_governance_legal/deep/er/policy.yaml"), []byte("p: 1\n"))
	fixed := writeConfig(t, `{"anchor":{"rules":[{"match":["*"],"globs":["{events_log}"]},{"match":["blueprint"],"globs":["07_governance_legal/**/*.yaml"]}]}}`)
	code, out, _ = runCLI(t, "--json", "--root", root, "--repo", repo, "--config", fixed, "anchor")
	res = anchor.Result{}
	json.Unmarshal([]byte(out), &res)
	if code != 0 || len(res.Records) != 0 {
		t.Fatalf("plain run after the fix: exit %d, %s", code, out)
	}
	code, out, stderr = runCLI(t, "--json", "--root", root, "--repo", repo, "--config", fixed, "anchor", "--reprocess", "all")
	res = anchor.Result{}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("--reprocess all: exit %d %s %s", code, out, stderr)
	}
	if len(res.Records) != 1 || res.Records[0].FilePath != "07_governance_legal/deep/er/policy.yaml" || res.Reprocessed != 13 {
		t.Fatalf("--reprocess all: %+v", res)
	}
	if n := recordedPaths(t, root)[tLog]; n != 2 {
		t.Errorf("the unchanged log was recorded %d times, want 2 (once per content)", n)
	}

	// --reprocess SINCE: only that event and the ones after it.
	mustWrite(t, filepath.Join(root, "07_governance_legal/deep/second.yaml"), []byte("p: 2\n"))
	var last struct {
		PA string `json:"proof_anchor"`
	}
	code, out, _ = runCLI(t, "--json", "--root", root, "event", "--event", "ci_change", "--version", "v9", "--hash", "h")
	if code != 0 || json.Unmarshal([]byte(out), &last) != nil {
		t.Fatalf("event --json: exit %d %s", code, out)
	}
	runCLI(t, "--root", root, "--repo", repo, "--config", fixed, "anchor")
	events := 0
	for _, r := range readManifest(t, root).Records {
		if r.FilePath == "07_governance_legal/deep/second.yaml" {
			events++
		}
	}
	if events != 0 {
		t.Fatal("ci_change is no blueprint event, yet second.yaml was anchored")
	}
	code, out, stderr = runCLI(t, "--json", "--root", root, "--repo", repo, "--config", fixed, "anchor", "--reprocess", last.PA)
	res = anchor.Result{}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Reprocessed != 1 || len(res.Records) != 0 {
		t.Fatalf("--reprocess of a non-blueprint event: exit %d %+v %s", code, res, stderr)
	}
	for _, bad := range []string{"nope", strings.Repeat("0", 64)} {
		if code, _, stderr := runCLI(t, "--root", root, "--repo", repo, "--config", fixed, "anchor", "--reprocess", bad); code != exitUsage || !strings.Contains(stderr, "--reprocess") {
			t.Errorf("--reprocess %s: exit %d: %s", bad, code, stderr)
		}
	}
}

// TestAnchorNeverSelectsOwnOutputs: rules that match the manifest and the
// telemetry state do not anchor them, so verify keeps passing run after run.
func TestAnchorNeverSelectsOwnOutputs(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	mustWrite(t, filepath.Join(root, "24_meta_orchestration/registry/logs/telemetry_state.json"), []byte("{}\n"))
	mustWrite(t, filepath.Join(root, "24_meta_orchestration/registry/manifests/dashboard_manifest.json"), []byte("{}\n"))
	cfg := writeConfig(t, `{"anchor":{"rules":[{"match":["*"],"globs":["**/*.json","24_meta_orchestration/registry/manifests/*.json","24_meta_orchestration/registry/logs/*"]}]}}`)
	for i := range 2 {
		if i > 0 {
			runCLI(t, "--root", root, "event", "--event", "e", "--version", "v", "--hash", "h")
		}
		if code, _, stderr := runCLI(t, "--root", root, "--repo", repo, "--config", cfg, "anchor"); code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, code, stderr)
		}
	}
	got := recordedPaths(t, root)
	for _, own := range []string{tManifest, "24_meta_orchestration/registry/logs/telemetry_state.json"} {
		if got[own] != 0 {
			t.Errorf("the tool's own output %s was anchored", own)
		}
	}
	if got["24_meta_orchestration/registry/manifests/dashboard_manifest.json"] != 1 {
		t.Errorf("other json files must still be selected: %v", got)
	}
	if code, _, stderr := runCLI(t, "--root", root, "--repo", repo, "verify"); code != 0 {
		t.Fatalf("verify after anchoring with **/*.json: exit %d: %s", code, stderr)
	}
}

// runBinary runs the real binary and fails (instead of hanging) if it does
// not return within d.
func runBinary(t *testing.T, d time.Duration, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, anchorBinary(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v still running after %v (killed): %s", args, time.Since(start), stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// TestFIFORefusedPromptly: a named pipe as a selected file or as the events
// log is refused at once, naming the path, with exit 1; nothing blocks.
func TestFIFORefusedPromptly(t *testing.T) {
	t.Run("selected file", func(t *testing.T) {
		root := newTree(t)
		repo := initRepo(t)
		mustMkdir(t, filepath.Join(root, tReleases))
		if err := syscall.Mkfifo(filepath.Join(root, tReleases, "SSID_Quarterly_Release_2026-Q1.zip"), 0o644); err != nil {
			t.Fatal(err)
		}
		runCLI(t, "--root", root, "event", "--event", "quarterly_release", "--version", "v1", "--hash", "h")
		code, stderr := runBinary(t, 60*time.Second, "--root", root, "--repo", repo, "anchor")
		if code != exitFailure || !strings.Contains(stderr, "SSID_Quarterly_Release_2026-Q1.zip") || !strings.Contains(stderr, "FIFO") {
			t.Fatalf("exit %d (want 1) naming the FIFO: %s", code, stderr)
		}
	})
	t.Run("events log", func(t *testing.T) {
		root := newTree(t)
		repo := initRepo(t)
		os.Remove(filepath.Join(root, tLog))
		if err := syscall.Mkfifo(filepath.Join(root, tLog), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"--root", root, "--repo", repo, "anchor"},
			{"--root", root, "--repo", repo, "anchor", "--dry-run"},
			{"--root", root, "event", "--event", "e", "--version", "v", "--hash", "h"},
		} {
			code, stderr := runBinary(t, 60*time.Second, args...)
			if code != exitFailure || !strings.Contains(stderr, "registry_events.log") || !strings.Contains(stderr, "FIFO") {
				t.Errorf("%v: exit %d (want 1) naming the FIFO log: %s", args[len(args)-1], code, stderr)
			}
		}
	})
}

// TestGuardRealExceptionsFile: the SSID repository's exceptions file (groups
// of flow lists) lets its dot directories and files pass; a stray root
// directory named like one of its keys does not.
func TestGuardRealExceptionsFile(t *testing.T) {
	root := newTree(t)
	mustWrite(t, filepath.Join(root, "23_compliance/exceptions/root_level_exceptions.yaml"), []byte(`version: "1.0"
allowed_directories:
  git_infrastructure: [".git", ".github"]
allowed_files:
  project_metadata: ["LICENSE", "README.md"]
`))
	mustMkdir(t, filepath.Join(root, ".git"))
	mustMkdir(t, filepath.Join(root, ".github"))
	mustWrite(t, filepath.Join(root, "LICENSE"), []byte("x"))
	if code, out, stderr := runCLI(t, "--root", root, "guard"); code != 0 || strings.TrimSpace(out) != "Root-24-LOCK: active" {
		t.Fatalf("real exceptions shape: exit %d %s %s", code, out, stderr)
	}
	mustMkdir(t, filepath.Join(root, "allowed_files"))
	if code, _, stderr := runCLI(t, "--root", root, "guard"); code != exitFailure || !strings.Contains(stderr, "allowed_files") {
		t.Fatalf("stray allowed_files directory: exit %d %s", code, stderr)
	}
}
