package main

import (
	"strings"
	"testing"
)

// TestTelemetryMasksCredentials: webhook header values whose name suggests
// a credential, and the SMTP username, never appear in --check-config or
// --dry-run output, in text or JSON; ordinary headers still show.
func TestTelemetryMasksCredentials(t *testing.T) {
	h := newHook(t, 200)
	secrets := []string{"tok-SEKRIT-1", "key-SEKRIT-2", "SEKRIT-3", "sid=SEKRIT-4", "SEKRIT-5", "smtp-user-SEKRIT"}
	root := telemetryTree(t, "80", func(cfg map[string]any) {
		withWebhook(h.URL + "/hook")(cfg)
		channelCfg(cfg, "webhook")["headers"] = map[string]any{
			"Authorization": "Bearer tok-SEKRIT-1", "x-api-key": "key-SEKRIT-2", "X-Auth-Token": "SEKRIT-3",
			"Cookie": "sid=SEKRIT-4", "X-Client-Secret": "SEKRIT-5", "User-Agent": "visible-agent/1",
		}
		e := channelCfg(cfg, "email")
		e["enabled"], e["smtp_server"], e["smtp_port"] = true, "127.0.0.1", 2525
		e["from_address"], e["to_addresses"], e["use_tls"] = "bot@example.org", []any{"ops@example.org"}, false
		e["username"] = "smtp-user-SEKRIT"
	})
	for _, args := range [][]string{
		{"telemetry", "--check-config"},
		{"--json", "telemetry", "--check-config"},
		{"telemetry", "--dry-run"},
		{"--json", "telemetry", "--dry-run"},
	} {
		code, out, errb := runCLI(t, append([]string{"--root", root, "--repo", t.TempDir()}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errb)
		}
		for _, s := range secrets {
			if strings.Contains(out+errb, s) {
				t.Errorf("%v printed %q:\n%s%s", args, s, out, errb)
			}
		}
		if !strings.Contains(out, "visible-agent/1") || !strings.Contains(out, "Bearer ***") {
			t.Errorf("%v: ordinary header or the auth scheme not shown:\n%s", args, out)
		}
		if strings.Join(args, " ") == "telemetry --dry-run" && !strings.Contains(out, "--- email via 127.0.0.1:2525 (plain text, with SMTP AUTH") {
			t.Errorf("dry run shows no email preview:\n%s", out)
		}
	}
	// The SMTP username set from the environment is masked the same way.
	t.Setenv("SMTP_USERNAME", "env-user-SEKRIT")
	code, out, errb := runCLI(t, "--root", root, "--repo", t.TempDir(), "telemetry", "--check-config")
	if code != 0 || strings.Contains(out+errb, "env-user-SEKRIT") || !strings.Contains(out, "username: *** (from SMTP_USERNAME)") {
		t.Errorf("SMTP_USERNAME: exit %d\n%s%s", code, out, errb)
	}
}
