package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"
)

// checkInvocations finds every `ssid-anchor` (or `"$bin"`) invocation in a
// shell script and checks that its command and flags exist in the CLI.
func checkInvocations(t *testing.T, where, script, prog string) int {
	t.Helper()
	var g globalOptions
	app := newApp(&g)
	flagsOf := func(fs []cli.Flag) map[string]bool {
		m := map[string]bool{}
		for _, f := range fs {
			for _, n := range f.Names() {
				m[n] = true
			}
		}
		return m
	}
	global := flagsOf(app.Flags)
	takesValue := map[string]bool{"root": true, "repo": true, "config": true, "log-level": true}
	n := 0
	for _, line := range strings.Split(script, "\n") {
		f := strings.Fields(line)
		for i := 0; i < len(f); i++ {
			if strings.Trim(f[i], `"`) != prog {
				continue
			}
			n++
			j := i + 1
			for j < len(f) && strings.HasPrefix(f[j], "--") {
				name := strings.SplitN(strings.TrimPrefix(f[j], "--"), "=", 2)[0]
				if !global[name] {
					t.Errorf("%s: %q: unknown global flag --%s", where, line, name)
				}
				if takesValue[name] && !strings.Contains(f[j], "=") {
					j++
				}
				j++
			}
			if j >= len(f) {
				t.Errorf("%s: %q: no command", where, line)
				break
			}
			cmd := app.Command(f[j])
			if cmd == nil {
				t.Errorf("%s: %q: no command %q in the CLI", where, line, f[j])
				break
			}
			local := flagsOf(cmd.Flags)
			for _, tok := range f[j+1:] {
				if tok == ">" || tok == "||" || tok == ">&2" || strings.HasPrefix(tok, ">") {
					break
				}
				if strings.HasPrefix(tok, "--") {
					name := strings.SplitN(tok[2:], "=", 2)[0]
					if !local[name] && !global[name] {
						t.Errorf("%s: %q: %s has no flag --%s", where, line, cmd.Name, name)
					}
				}
			}
		}
	}
	return n
}

type workflow struct {
	On struct {
		Schedule []struct {
			Cron string `yaml:"cron"`
		} `yaml:"schedule"`
		WorkflowDispatch *struct {
			Inputs map[string]any `yaml:"inputs"`
		} `yaml:"workflow_dispatch"`
	} `yaml:"on"`
	Jobs map[string]struct {
		Steps []struct {
			Name string            `yaml:"name"`
			ID   string            `yaml:"id"`
			Uses string            `yaml:"uses"`
			Run  string            `yaml:"run"`
			With map[string]string `yaml:"with"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// TestQuarterlyWorkflow parses scripts/github/quarterly_release.yml and
// checks its schedule, that it caches the repo, runs release with the
// GitHub output and markdown, verifies, opens the PR with that body, and
// that every ssid-anchor command it runs exists with those flags.
func TestQuarterlyWorkflow(t *testing.T) {
	b, err := os.ReadFile("../../scripts/github/quarterly_release.yml")
	if err != nil {
		t.Fatal(err)
	}
	var wf workflow
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatalf("quarterly_release.yml: %v", err)
	}
	if len(wf.On.Schedule) != 1 || wf.On.Schedule[0].Cron != "0 9 1 1,4,7,10 *" {
		t.Errorf("schedule %+v, want the SPEC 4.5 cron", wf.On.Schedule)
	}
	if wf.On.WorkflowDispatch == nil || wf.On.WorkflowDispatch.Inputs["quarter"] == nil {
		t.Error("no workflow_dispatch with a quarter input")
	}
	job, ok := wf.Jobs["release"]
	if !ok {
		t.Fatal("no release job")
	}
	var all strings.Builder
	var cached, pr, released, verified bool
	for _, s := range job.Steps {
		all.WriteString(s.Run + "\n")
		switch {
		case strings.HasPrefix(s.Uses, "actions/cache@"):
			cached = s.With["path"] == "~/.ssid-anchor"
		case strings.HasPrefix(s.Uses, "peter-evans/create-pull-request@"):
			pr = s.With["body-path"] == "${{ runner.temp }}/pr_body.md"
		}
		if strings.Contains(s.Run, `release --github-output "$GITHUB_OUTPUT" --markdown > "$RUNNER_TEMP/pr_body.md"`) && s.ID == "release" {
			released = true
		}
		if strings.Contains(s.Run, "sha256sum -c") && strings.Contains(s.Run, "ssid-anchor --root . verify") {
			verified = true
		}
	}
	if !cached || !pr || !released || !verified {
		t.Errorf("cache %v, release %v, verify %v, PR with the release body %v", cached, released, verified, pr)
	}
	if n := checkInvocations(t, "quarterly_release.yml", all.String(), "ssid-anchor"); n < 4 {
		t.Errorf("found %d ssid-anchor invocations, want at least 4", n)
	}
}

// TestReleaseScript runs scripts/release.sh against a scratch tree: it
// releases, verifies and leaves outputs whose CID is stock `ipfs add -Q` of
// the bundle; with a required file missing it fails with exit 1.
func TestReleaseScript(t *testing.T) {
	b, err := os.ReadFile("../../scripts/release.sh")
	if err != nil {
		t.Fatal(err)
	}
	if n := checkInvocations(t, "release.sh", string(b), "$bin"); n < 4 {
		t.Errorf("found %d ssid-anchor invocations in release.sh, want at least 4", n)
	}
	const q = "2026-Q3"
	root := bundleTree(t, q)
	out := filepath.Join(t.TempDir(), "out")
	script, _ := filepath.Abs("../../scripts/release.sh")
	run := func() (int, string) {
		cmd := exec.Command("sh", script, q)
		cmd.Env = append(os.Environ(), "SSID_ANCHOR_BIN="+anchorBinary(t), "SSID_ROOT="+root,
			"SSID_ANCHOR_REPO="+filepath.Join(t.TempDir(), "repo"), "RELEASE_OUT="+out, "SOURCE_DATE_EPOCH=")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(stdout) + stderr.String()
	}
	if err := os.Remove(filepath.Join(root, tOpsGuide)); err != nil {
		t.Fatal(err)
	}
	if code, log := run(); code != 1 || !strings.Contains(log, tOpsGuide) {
		t.Fatalf("with %s missing: exit %d\n%s", tOpsGuide, code, log)
	}
	mustWrite(t, filepath.Join(root, tOpsGuide), readFile(t, "testdata/release/OPERATIONS_GUIDE.md"))
	code, log := run()
	if code != 0 {
		t.Fatalf("release.sh: exit %d\n%s", code, log)
	}
	zip := filepath.Join(root, fmt.Sprintf(tReleaseZip, q))
	env := string(readFile(t, filepath.Join(out, "outputs.env")))
	want := stockAdd(t, filepath.Join(t.TempDir(), "stock"), "test", zip)
	for _, line := range []string{"ipfs_cid=" + want, "bundle_hash=" + sha256File(t, zip), "status=ok"} {
		if !strings.Contains(env, line+"\n") {
			t.Errorf("outputs.env lacks %q:\n%s", line, env)
		}
	}
	if body := string(readFile(t, filepath.Join(out, "pr_body.md"))); !strings.Contains(body, "- **IPFS CID:** `"+want+"`") {
		t.Errorf("pr_body.md:\n%s", body)
	}
	if !strings.Contains(log, "records passed; chain intact") || strings.Contains(log, "FAILED") {
		t.Errorf("no verify report in the script's output:\n%s", log)
	}
}
