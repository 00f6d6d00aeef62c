package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// governanceTree is a root that holds Root-24-LOCK with the real SSID
// registry log (the telemetry package's fixture copy).
func governanceTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, m := range []string{"01_ai_layer", "02_audit_logging", "03_core", "04_deployment", "05_documentation",
		"06_data_pipeline", "07_governance_legal", "08_identity_score", "09_meta_identity", "10_interoperability",
		"11_test_simulation", "12_tooling", "13_ui_layer", "14_zero_time_auth", "15_infra", "16_codex",
		"17_observability", "18_data_layer", "19_adapters", "20_foundation", "21_post_quantum_crypto",
		"22_datasets", "23_compliance", "24_meta_orchestration"} {
		makeDir(t, filepath.Join(root, m))
	}
	writeFile(t, filepath.Join(root, "23_compliance/exceptions/root_level_exceptions.yaml"), []byte("- README.md\n"))
	writeFile(t, filepath.Join(root, "README.md"), []byte("# SSID\n"))
	b, err := os.ReadFile("../../telemetry/testdata/registry_events.log")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "24_meta_orchestration/registry/logs/registry_events.log"), b)
	return root
}

func makeDir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	makeDir(t, filepath.Dir(path))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

const (
	tTelemetryConfig = "07_governance_legal/telemetry_config.json"
	tDashboardCSV    = "05_documentation/reports/dashboard/dashboard_data.csv"
	tTelemetryState  = "24_meta_orchestration/registry/logs/telemetry_state.json"
)

// telemetryTree is a governance tree with the seed telemetry config (edited
// by fn) and a dashboard whose current score is score.
func telemetryTree(t *testing.T, score string, fn func(cfg map[string]any)) string {
	t.Helper()
	root := governanceTree(t)
	b, err := os.ReadFile("../../telemetry/testdata/telemetry_config.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if fn != nil {
		fn(cfg)
	}
	b, _ = json.MarshalIndent(cfg, "", "  ")
	writeFile(t, filepath.Join(root, tTelemetryConfig), b)
	writeFile(t, filepath.Join(root, tDashboardCSV), []byte("quarter,date,compliance_score,violations,commits,proof_anchors,hash_valid,root24_status\n"+
		"2025-Q4,2025-12-31,100,0,145,3ddc8d7a,true,PASS\n2026-Q1,2026-01-31,"+score+",0,189,dc9bb56b,true,PASS\n"))
	return root
}

func channelCfg(cfg map[string]any, name string) map[string]any {
	return cfg["notifications"].(map[string]any)[name].(map[string]any)
}

// hook is a loopback webhook receiver answering with status.
type hook struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	status int
	seen   chan struct{}
	hang   bool
}

func newHook(t *testing.T, status int) *hook {
	h := &hook{status: status, seen: make(chan struct{}, 100)}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, b)
		hang := h.hang
		h.mu.Unlock()
		h.seen <- struct{}{}
		if hang {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(h.status)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) received() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.bodies...)
}

func withWebhook(url string) func(map[string]any) {
	return func(cfg map[string]any) {
		w := channelCfg(cfg, "webhook")
		w["enabled"], w["url"], w["secret"] = true, url, "hmac-key-do-not-print"
	}
}

func tel(t *testing.T, root string, args ...string) (int, string, string) {
	t.Helper()
	return runCLI(t, append([]string{"--root", root, "--repo", t.TempDir(), "telemetry"}, args...)...)
}

func TestTelemetryCheckConfig(t *testing.T) {
	root := telemetryTree(t, "100", func(cfg map[string]any) { cfg["surprise"] = 1 })
	t.Setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/envtokenvalue")
	t.Setenv("SMTP_PASSWORD", "smtp-password-value")
	code, out, errb := tel(t, root, "--check-config")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errb)
	}
	for _, want := range []string{"config is valid", "unknown key: surprise (kept, not used)", "https://hooks.slack.com/services/*** (from SLACK_WEBHOOK_URL)",
		"password: *** (from SMTP_PASSWORD)", "critical below 90 or drop >= 10 or violations > 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errb, "envtokenvalue") || strings.Contains(out+errb, "smtp-password-value") {
		t.Errorf("a secret was printed:\n%s%s", out, errb)
	}

	code, out, _ = runCLI(t, "--root", root, "--repo", t.TempDir(), "--json", "telemetry", "--check-config")
	var doc struct {
		Valid    bool
		Unknown  []string `json:"unknown_keys"`
		Channels []struct{ Name, Target string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || !doc.Valid || len(doc.Channels) != 4 || doc.Unknown[0] != "surprise" {
		t.Errorf("--json --check-config: exit %d %+v\n%s", code, doc, out)
	}
}

func TestTelemetryInvalidConfigIsExit2(t *testing.T) {
	root := telemetryTree(t, "100", func(cfg map[string]any) {
		cfg["thresholds"].(map[string]any)["compliance_score_critical"] = 96
		channelCfg(cfg, "discord")["enabled"] = true
	})
	for _, args := range [][]string{{"--check-config"}, {}} {
		code, out, errb := tel(t, root, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		for _, want := range []string{"thresholds.compliance_score_critical: must be below compliance_score_min (96 >= 95)",
			"notifications.discord.webhook_url: required when enabled"} {
			if !strings.Contains(errb, want) {
				t.Errorf("%v: stderr lacks %q:\n%s%s", args, want, out, errb)
			}
		}
	}
	writeFile(t, filepath.Join(root, tTelemetryConfig), []byte(`{"check_interval_seconds": "soon"}`))
	if code, _, errb := tel(t, root); code != 2 || !strings.Contains(errb, "check_interval_seconds: must be a number, got string") {
		t.Errorf("type error: exit %d %s", code, errb)
	}
}

func TestTelemetryDisabledDoesNothing(t *testing.T) {
	h := newHook(t, 200)
	root := telemetryTree(t, "50", func(cfg map[string]any) { withWebhook(h.URL + "/x")(cfg); cfg["enabled"] = false })
	code, errb, _ := tel(t, root) // the answer is the result: stdout
	if code != 0 || !strings.Contains(errb, "telemetry is disabled") {
		t.Errorf("exit %d: %s", code, errb)
	}
	if len(h.received()) != 0 {
		t.Error("a disabled telemetry sent something")
	}
	if _, err := os.Stat(filepath.Join(root, tTelemetryState)); err == nil {
		t.Error("a disabled telemetry wrote state")
	}
}

func TestTelemetryTest(t *testing.T) {
	t.Run("no channel enabled", func(t *testing.T) {
		code, _, errb := tel(t, telemetryTree(t, "100", nil), "--test")
		if code != 2 || !strings.Contains(errb, "no channel is enabled") {
			t.Errorf("exit %d: %s", code, errb)
		}
	})
	t.Run("delivered", func(t *testing.T) {
		h := newHook(t, 200)
		code, out, errb := tel(t, telemetryTree(t, "100", withWebhook(h.URL+"/hook/secretpath")), "--test")
		if code != 0 || len(h.received()) != 1 || !strings.Contains(string(h.received()[0]), `"kind":"test"`) {
			t.Errorf("exit %d, %d requests\n%s%s", code, len(h.received()), out, errb)
		}
	})
	t.Run("refused", func(t *testing.T) {
		h := newHook(t, 400)
		code, out, errb := tel(t, telemetryTree(t, "100", withWebhook(h.URL+"/hook/secretpath")), "--test")
		if code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "400 Bad Request") {
			t.Errorf("exit %d\n%s%s", code, out, errb)
		}
		if strings.Contains(out+errb, "secretpath") || strings.Contains(out+errb, "hmac-key-do-not-print") {
			t.Errorf("secret printed:\n%s%s", out, errb)
		}
	})
}

func TestTelemetryCheckSendsOnceAndFailsLoudly(t *testing.T) {
	h := newHook(t, 200)
	root := telemetryTree(t, "80", withWebhook(h.URL+"/hook"))
	code, out, errb := tel(t, root)
	if code != 0 || len(h.received()) != 1 || !strings.Contains(out, `webhook: sent "[CRITICAL] SSID compliance score 80/100"`) {
		t.Fatalf("exit %d, %d requests\n%s%s", code, len(h.received()), out, errb)
	}
	code, errb, _ = tel(t, root) // the report: stdout
	if code != 0 || len(h.received()) != 1 || !strings.Contains(errb, "nothing due") {
		t.Errorf("second check: exit %d, %d requests: %s", code, len(h.received()), errb)
	}

	bad := newHook(t, 500)
	root = telemetryTree(t, "80", withWebhook(bad.URL+"/hook"))
	code, errb, _ = tel(t, root) // the report: stdout
	if code != 1 || !strings.Contains(errb, "500 Internal Server Error") {
		t.Errorf("a failed channel must be exit 1: %d\n%s", code, errb)
	}
	var st struct {
		LastNotificationSent *string `json:"last_notification_sent"`
		LastCheck            string  `json:"last_check"`
	}
	b, _ := os.ReadFile(filepath.Join(root, tTelemetryState))
	if json.Unmarshal(b, &st) != nil || st.LastNotificationSent != nil || !strings.HasSuffix(st.LastCheck, "Z") {
		t.Errorf("state after a failed delivery:\n%s", b)
	}
}

func TestTelemetryDryRun(t *testing.T) {
	h := newHook(t, 200)
	root := telemetryTree(t, "80", withWebhook(h.URL+"/hook/dry-secret"))
	code, out, errb := tel(t, root, "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errb)
	}
	if len(h.received()) != 0 {
		t.Error("--dry-run sent a request")
	}
	for _, want := range []string{"--- webhook: POST http://127.0.0.1:", "/***", "X-Ssid-Signature: sha256=", `"level": "critical"`} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errb, "dry-secret") {
		t.Error("dry run printed the URL's secret")
	}
	if _, err := os.Stat(filepath.Join(root, tTelemetryState)); err == nil {
		t.Error("--dry-run wrote state")
	}
	code, out, _ = runCLI(t, "--root", root, "--repo", t.TempDir(), "--json", "telemetry", "--dry-run")
	var rep struct {
		Previews []struct {
			Channel string
			Body    json.RawMessage
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Previews) != 1 || !json.Valid(rep.Previews[0].Body) {
		t.Errorf("--json --dry-run: exit %d\n%s", code, out)
	}
}

func TestGuard(t *testing.T) {
	root := governanceTree(t)
	code, out, _ := runCLI(t, "--root", root, "--repo", t.TempDir(), "guard")
	if code != 0 || strings.TrimSpace(out) != "Root-24-LOCK: active" {
		t.Errorf("exit %d: %q", code, out)
	}
	makeDir(t, filepath.Join(root, "25_extra"))
	writeFile(t, filepath.Join(root, "notes.txt"), []byte("x"))
	code, out, errb := runCLI(t, "--root", root, "--repo", t.TempDir(), "guard")
	if code != 1 || strings.TrimSpace(out) != "Root-24-LOCK: violated" || !strings.Contains(errb, "notes.txt") {
		t.Errorf("exit %d: %q %s", code, out, errb)
	}
	code, out, _ = runCLI(t, "--root", root, "--repo", t.TempDir(), "--json", "guard")
	var doc struct {
		Lock       string   `json:"root_24_lock"`
		Unexpected []string `json:"unexpected"`
	}
	if code != 1 || json.Unmarshal([]byte(out), &doc) != nil || doc.Lock != "violated" || len(doc.Unexpected) != 2 {
		t.Errorf("--json: exit %d %s", code, out)
	}
}

// TestTelemetryWatchStopsOnSIGTERM runs the real binary: SIGTERM arrives
// while a delivery hangs; the process must stop within a second, exit 0,
// and leave the state saved.
func TestTelemetryWatchStopsOnSIGTERM(t *testing.T) {
	bin := anchorBinary(t)
	h := newHook(t, 200)
	h.hang = true
	root := telemetryTree(t, "80", func(cfg map[string]any) { withWebhook(h.URL + "/hook")(cfg); cfg["check_interval_seconds"] = 10 })
	cmd := exec.Command(bin, "--root", root, "--repo", t.TempDir(), "telemetry", "--watch")
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-h.seen:
	case err := <-done:
		t.Fatalf("watch exited early: %v\n%s", err, errb.String())
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("no delivery attempt within a minute\n%s", errb.String())
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		took := time.Since(start)
		if err != nil {
			t.Errorf("exit: %v\n%s", err, errb.String())
		}
		if took > time.Second {
			t.Errorf("stopped %s after SIGTERM, want within a second", took)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("still running 10s after SIGTERM\n%s", errb.String())
	}
	b, err := os.ReadFile(filepath.Join(root, tTelemetryState))
	if err != nil {
		t.Fatalf("state not saved: %v\n%s", err, errb.String())
	}
	var st struct {
		LastCheck string `json:"last_check"`
		Alerts    map[string]struct {
			Active      bool     `json:"active"`
			DeliveredTo []string `json:"delivered_to"`
		} `json:"alerts"`
	}
	if json.Unmarshal(b, &st) != nil || st.LastCheck == "" || !st.Alerts["compliance_score"].Active || len(st.Alerts["compliance_score"].DeliveredTo) != 0 {
		t.Errorf("state after SIGTERM:\n%s", b)
	}
	if !strings.Contains(errb.String(), "telemetry watch stopped; state saved") {
		t.Errorf("no clean-stop message:\n%s", errb.String())
	}
}
