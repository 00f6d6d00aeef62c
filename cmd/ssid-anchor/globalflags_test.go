package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestHoistGlobalFlags(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"x anchor --json", "x --json anchor"},
		{"x --root . anchor --json", "x --root . --json anchor"},
		{"x verify --manifest M --car X --root T", "x --root T verify --manifest M --car X"},
		{"x verify --car a.car b.car --root=T --log-level debug", "x --root=T --log-level debug verify --car a.car b.car"},
		{"x event --event e -- --json", "x event --event e -- --json"},
		{"x telemetry --check-config --config c.json", "x --config c.json telemetry --check-config"},
		{"x anchor --log-format json --repo r", "x --log-format json --repo r anchor"},
	} {
		if got := strings.Join(hoistGlobalFlags(strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("hoist(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestGlobalFlagsAnywhere: global flags work before or after the command,
// stdout holds JSON only with --json (errors as {"error","exit_code"}),
// and help and usage errors go to stderr.
func TestGlobalFlagsAnywhere(t *testing.T) {
	tr := vcAnchoredTree(t)
	dir, cars := vcExport(t, tr)
	manifest := filepath.Join(dir, "ipfs_anchor_manifest.json")
	cfg := filepath.Join(t.TempDir(), "appliance.json")
	mustWrite(t, cfg, []byte(`{"http": {"listen": "127.0.0.1:9"}}`))

	jsonRun := func(t *testing.T, wantCode int, args ...string) map[string]any {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"ssid-anchor"}, args...), &out, &errb)
		if code != wantCode {
			t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, out.String(), errb.String())
		}
		var doc map[string]any
		if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
			t.Fatalf("%v: stdout is not one JSON document: %v\n%s", args, err, out.String())
		}
		return doc
	}
	for name, args := range map[string][]string{
		"all before":          {"--json", "--root", tr.root, "--repo", tr.repo, "--config", cfg, "--log-level", "debug", "--log-format", "json", "verify"},
		"all after":           {"verify", "--json", "--root", tr.root, "--repo", tr.repo, "--config", cfg, "--log-level", "debug", "--log-format", "json"},
		"mixed":               {"--root", tr.root, "verify", "--repo=" + tr.repo, "--json"},
		"anchor --verify":     {"anchor", "--verify", "--root", tr.root, "--repo", tr.repo, "--json"},
		"car then root":       append(append([]string{"verify", "--manifest", manifest, "--car"}, cars...), "--root", tr.root, "--json"),
		"anchor --verify car": append(append([]string{"anchor", "--verify", "--manifest", manifest, "--json", "--car"}, cars...), "--root", tr.root),
	} {
		t.Run(name, func(t *testing.T) {
			doc := jsonRun(t, 0, args...)
			if doc["ok"] != true {
				t.Fatalf("verify report not ok: %v", doc)
			}
		})
	}
	t.Run("a bad --config after the command is read", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.json")
		mustWrite(t, bad, []byte(`{"anchor": null}`))
		doc := jsonRun(t, exitUsage, "verify", "--root", tr.root, "--repo", tr.repo, "--config", bad, "--json")
		if !strings.Contains(doc["error"].(string), "key anchor: null") || doc["exit_code"] != float64(exitUsage) {
			t.Fatalf("error document: %v", doc)
		}
	})
	t.Run("errors are JSON on stdout", func(t *testing.T) {
		for _, args := range [][]string{
			{"anchor", "--bogus", "--json"},
			{"--json", "nosuchcommand"},
			{"verify", "--root", tr.root, "--repo", filepath.Join(t.TempDir(), "none"), "--json"},
			{"anchor", "--network", "--json"},
			{"--log-format", "yaml", "guard", "--json"},
		} {
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"ssid-anchor"}, args...), &out, &errb)
			var doc struct {
				Error    string `json:"error"`
				ExitCode int    `json:"exit_code"`
			}
			if err := json.Unmarshal(out.Bytes(), &doc); err != nil || doc.Error == "" || doc.ExitCode != code || code == 0 {
				t.Errorf("%v: exit %d, stdout %q (want one error document)", args, code, out.String())
			}
			if !strings.Contains(errb.String(), "ssid-anchor: ") {
				t.Errorf("%v: no human message on stderr: %q", args, errb.String())
			}
		}
	})
	t.Run("help goes to stdout", func(t *testing.T) { // SPEC 3, streams (issue 21.2)
		for _, args := range [][]string{{"--help"}, {"verify", "--help"}, {"help", "anchor"}} {
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"ssid-anchor"}, args...), &out, &errb)
			if code != 0 || errb.Len() != 0 || !strings.Contains(out.String(), "USAGE") {
				t.Errorf("%v: exit %d, stderr %q, stdout %d bytes", args, code, errb.String(), out.Len())
			}
		}
	})
	t.Run("log-format json", func(t *testing.T) {
		var out, errb bytes.Buffer
		run(context.Background(), []string{"ssid-anchor", "anchor", "--dry-run", "--root", tr.root, "--log-format", "json", "--log-level", "debug"}, &out, &errb)
		first := strings.SplitN(strings.TrimSpace(errb.String()), "\n", 2)[0]
		var rec map[string]any
		if err := json.Unmarshal([]byte(first), &rec); err != nil || rec["level"] == nil {
			t.Errorf("--log-format json after the command: first stderr line %q is not a JSON log record", first)
		}
	})
	if !reflect.DeepEqual(hoistGlobalFlags([]string{"x"}), []string{"x"}) {
		t.Error("hoist of a bare program name")
	}
}
