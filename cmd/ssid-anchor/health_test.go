package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ssid/ssid-anchor/anchor/pinning"
	"github.com/ssid/ssid-anchor/anchor/pinning/psatest"
)

// httpGet fetches path from the daemon and returns status and body.
func (d *daemonProc) httpGet(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + d.http + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// statusJSON runs `--json status` in-process and decodes it.
func statusJSON(t *testing.T, args ...string) (int, map[string]any, string) {
	t.Helper()
	code, out, stderr := runCLI(t, append(args, "--json", "status")...)
	var doc map[string]any
	if code == 0 {
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
	}
	return code, doc, stderr
}

// TestStatusPinnedCountsTheRepo: "pinned" in status, /metrics and the
// console is what the repo's pin set holds, not the records' flags. The
// tree is anchored into one repo and then looked at with a second, fresh
// repo that holds none of the blocks: every record says pinned: true, and
// none is pinned there.
func TestStatusPinnedCountsTheRepo(t *testing.T) {
	root := newTree(t)
	full := initRepo(t)
	if code, _, stderr := runCLI(t, "--root", root, "--repo", full, "anchor"); code != 0 {
		t.Fatalf("anchor: exit %d: %s", code, stderr)
	}
	recs := readManifest(t, root).Records
	if len(recs) == 0 || !recs[0].Pinned {
		t.Fatalf("setup: the anchored records are %+v, want pinned ones", recs)
	}
	n := float64(len(recs))

	code, doc, stderr := statusJSON(t, "--root", root, "--repo", full)
	if code != 0 || doc["pinned"] != n || doc["manifest_pinned"] != n {
		t.Fatalf("status on the anchoring repo: exit %d pinned %v manifest_pinned %v, want %v: %s", code, doc["pinned"], doc["manifest_pinned"], n, stderr)
	}

	empty := initRepo(t)
	code, doc, stderr = statusJSON(t, "--root", root, "--repo", empty)
	if code != 0 || doc["pinned"] != float64(0) || doc["manifest_pinned"] != n {
		t.Fatalf("status on a repo holding none of the blocks: exit %d pinned %v manifest_pinned %v, want 0 and %v: %s", code, doc["pinned"], doc["manifest_pinned"], n, stderr)
	}
	// status is a result: its text is on stdout (SPEC 3, streams).
	code, out, _ := runCLI(t, "--root", root, "--repo", empty, "status")
	if code != 0 || !strings.Contains(out, "0 pinned in the repo") {
		t.Fatalf("status text on the empty repo (exit %d) does not say 0 pinned in the repo:\n%s", code, out)
	}
	// verify agrees: it fails every record on that repo.
	if code, _, _ := runCLI(t, "--root", root, "--repo", empty, "verify"); code == 0 {
		t.Fatal("setup: verify passed on a repo holding none of the blocks")
	}

	d := startDaemon(t, root, empty, nil)
	d.waitLog(t, `msg="job done" job=anchor`)
	_, body := d.httpGet(t, "/metrics")
	if !strings.Contains(body, "\nssid_anchor_pinned 0\n") || !strings.Contains(body, "\nssid_anchor_anchors "+strings.TrimSuffix(jsonNum(n), ".0")+"\n") {
		t.Errorf("/metrics on the empty repo does not say 0 pinned:\n%s", grepLines(body, "ssid_anchor_"))
	}
	_, page := d.httpGet(t, "/")
	if !strings.Contains(page, "not pinned") || strings.Contains(page, `<span class="badge ok">pinned</span>`) {
		t.Errorf("the console shows records as pinned in a repo that holds none of them")
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("daemon exit %d", code)
	}
}

func jsonNum(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// telemetryNeedsWebhookSecret writes a telemetry config into root whose
// webhook channel is on with its URL left to WEBHOOK_URL.
func telemetryNeedsWebhookSecret(t *testing.T, root string) {
	t.Helper()
	b, err := os.ReadFile("../../telemetry/testdata/telemetry_config.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	wh := cfg["notifications"].(map[string]any)["webhook"].(map[string]any)
	wh["enabled"], wh["url"] = true, ""
	b, _ = json.MarshalIndent(cfg, "", "  ")
	mustWrite(t, filepath.Join(root, tTelemetryConfig), b)
}

// TestDaemonMissingSecretIsDegraded: a telemetry config whose webhook
// needs WEBHOOK_URL, with WEBHOOK_URL unset (as under systemd without an
// EnvironmentFile): the daemon logs an ERROR, /healthz answers 503 naming
// the job and the reason, /metrics counts it, and status (text and
// --json) names it.
func TestDaemonMissingSecretIsDegraded(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	telemetryNeedsWebhookSecret(t, root)
	t.Setenv("WEBHOOK_URL", "") // status in-process reads the same environment
	d := startDaemon(t, root, repo, []string{"WEBHOOK_URL="})
	d.waitLog(t, `msg="job done" job=anchor`)
	if !strings.Contains(d.log.String(), `level=ERROR msg="configured job cannot run" job=telemetry`) {
		t.Errorf("no ERROR line for the telemetry job:\n%s", d.log.String())
	}
	code, body := d.httpGet(t, "/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "telemetry") || !strings.Contains(body, "WEBHOOK_URL") {
		t.Errorf("/healthz with a missing secret: %d %q, want 503 naming telemetry and WEBHOOK_URL", code, body)
	}
	_, body = d.httpGet(t, "/metrics")
	if !strings.Contains(body, "\nssid_anchor_config_problems 1\n") {
		t.Errorf("/metrics does not count the problem:\n%s", grepLines(body, "config_problems"))
	}
	// status through the daemon (forwarded over its socket).
	code, doc, stderr := statusJSON(t, "--root", root, "--repo", repo)
	if code != 0 {
		t.Fatalf("status --json: exit %d: %s", code, stderr)
	}
	probs, _ := doc["problems"].([]any)
	if len(probs) != 1 || !strings.Contains(jsonString(probs[0]), `"job":"telemetry"`) || !strings.Contains(jsonString(probs[0]), "WEBHOOK_URL") {
		t.Errorf("status --json problems: %v", doc["problems"])
	}
	// status is a result: its text is on stdout (SPEC 3, streams).
	code, out, _ := runCLI(t, "--root", root, "--repo", repo, "status")
	if code != 0 || !strings.Contains(out, "PROBLEM:    job telemetry cannot run") || !strings.Contains(out, "WEBHOOK_URL") {
		t.Errorf("status text (exit %d) does not name the problem:\n%s", code, out)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("daemon exit %d", code)
	}
	// Without the daemon, status names it too.
	code, out, _ = runCLI(t, "--root", root, "--repo", repo, "status")
	if code != 0 || !strings.Contains(out, "PROBLEM:    job telemetry cannot run") {
		t.Errorf("offline status (exit %d) does not name the problem:\n%s", code, out)
	}
	// With the secret set the daemon is healthy.
	d = startDaemon(t, root, repo, []string{"WEBHOOK_URL=http://127.0.0.1:9/hook"})
	if code, body := d.httpGet(t, "/healthz"); code != 200 {
		t.Errorf("/healthz with the secret set: %d %q", code, body)
	}
	d.stop(t)
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestDaemonRemotePinMissingTokenFails: a remote pinning service whose
// token variable is unset in the daemon's environment. Its requests are
// not sent, each says it is blocked and names the variable, every run of
// the remote-pins job fails (it is not "ok" while all its work fails),
// and the daemon reports the configured job that cannot run.
func TestDaemonRemotePinMissingTokenFails(t *testing.T) {
	srv := psatest.New()
	defer srv.Close()
	root, repo, cfg := pinTree(t)
	writePinConfig(t, cfg, srv.URL, "")
	t.Setenv(pinTokenEnv, "")
	d := startDaemonWith(t, root, repo, []string{pinTokenEnv + "="}, []string{"--config", cfg}, "--anchor-debounce", "10m")
	d.waitLog(t, `msg="job done" job=anchor`)
	g := []string{"--root", root, "--repo", repo, "--config", cfg}
	if code, _, stderr := runEnv(t, []string{pinTokenEnv + "="}, append(g, "event", "--event", "governance_update", "--version", "v2", "--hash", "h")...); code != 0 {
		t.Fatalf("event: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := runEnv(t, []string{pinTokenEnv + "="}, append(g, "anchor", "--remote", "cluster")...); code != 0 {
		t.Fatalf("anchor --remote via the daemon: exit %d\n%s", code, stderr)
	}
	d.waitLog(t, `level=ERROR msg="job failed" job=remote-pins .*remote pin requests failed: blocked: environment variable `+pinTokenEnv+` not set`)
	reqs := queueOf(t, repo)
	if len(reqs) == 0 {
		t.Fatal("anchor --remote queued nothing")
	}
	for _, r := range reqs {
		if r.Status != pinning.StatusQueued || !strings.Contains(r.LastError, "blocked: environment variable "+pinTokenEnv+" not set") {
			t.Errorf("request %s: status %s, last error %q; want queued and blocked naming %s", r.CID, r.Status, r.LastError, pinTokenEnv)
		}
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("%d calls reached the service without a token", n)
	}
	_, body := d.httpGet(t, "/status")
	var st struct {
		Jobs []struct {
			Name      string `json:"name"`
			LastError string `json:"last_error"`
		} `json:"jobs"`
		Problems []struct {
			Job    string `json:"job"`
			Reason string `json:"reason"`
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status: %v\n%s", err, body)
	}
	var jobErr string
	for _, j := range st.Jobs {
		if j.Name == jobRemotePins {
			jobErr = j.LastError
		}
	}
	if !strings.Contains(jobErr, pinTokenEnv) {
		t.Errorf("the remote-pins job's last error is %q, want the missing variable named", jobErr)
	}
	if len(st.Problems) != 1 || st.Problems[0].Job != jobRemotePins || !strings.Contains(st.Problems[0].Reason, pinTokenEnv) {
		t.Errorf("status problems: %+v", st.Problems)
	}
	if code, body := d.httpGet(t, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, pinTokenEnv) {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("daemon exit %d", code)
	}
}

// TestDaemonJobLastSuccessSurvivesRestart: /metrics carries each job's
// last success, and it is kept across a restart (the run counters start
// at zero again). The second start's anchoring run fails (the manifest is
// broken meanwhile), so the value it shows can only be the first one's.
func TestDaemonJobLastSuccessSurvivesRestart(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	d := startDaemon(t, root, repo, nil)
	d.waitLog(t, `msg="job done" job=anchor`)
	re := regexp.MustCompile(`\nssid_anchor_job_last_success_timestamp_seconds\{job="anchor"\} (\S+)\n`)
	_, body := d.httpGet(t, "/metrics")
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics has no last success for the anchor job:\n%s", grepLines(body, "ssid_anchor_job"))
	}
	first, err := strconv.ParseFloat(m[1], 64)
	if err != nil || first <= 0 {
		t.Fatalf("last success %q after a successful run", m[1])
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("daemon exit %d", code)
	}

	mustWrite(t, filepath.Join(root, tManifest), []byte("{ not json"))
	d = startDaemon(t, root, repo, nil)
	d.waitLog(t, `msg="job failed" job=anchor`)
	_, body = d.httpGet(t, "/metrics")
	if !strings.Contains(body, "\nssid_anchor_job_failures_total{job=\"anchor\"} 1\n") {
		t.Fatalf("setup: the second start's anchoring run did not fail:\n%s", grepLines(body, "ssid_anchor_job"))
	}
	m = re.FindStringSubmatch(body)
	if m == nil || m[1] != strconv.FormatFloat(first, 'g', -1, 64) {
		t.Errorf("after a restart the anchor job's last success is %v, want the first run's %v:\n%s", m, first, grepLines(body, "ssid_anchor_job"))
	}
	code, out, _ := runCLI(t, "--root", root, "--repo", repo, "status")
	if code != 0 || !strings.Contains(out, "last success ") {
		t.Errorf("status (exit %d) does not show the last success of the failing job:\n%s", code, out)
	}
	d.stop(t)
}

// TestStatusWhileAnchorHoldsTheRepo: while a one-shot `anchor` holds the
// repo (deterministically: it is adding a 1 TiB sparse file), status still
// answers with exit 0: a read-only view of the manifest, the config and
// the last runs, saying which pid holds the repo, in text and --json.
func TestStatusWhileAnchorHoldsTheRepo(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	if code, _, stderr := runCLI(t, "--root", root, "--repo", repo, "anchor"); code != 0 {
		t.Fatalf("first anchor: exit %d: %s", code, stderr)
	}
	records := float64(len(readManifest(t, root).Records))
	sparseBundle(t, root)
	held := startHeldRun(t, root, repo)
	pid := held.cmd.Process.Pid

	code, out, stderr := runCLI(t, "--root", root, "--repo", repo, "status")
	want := "repo lock:  the repo is locked by pid " + strconv.Itoa(pid)
	// status is a result: its text is on stdout (SPEC 3, streams).
	if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "read-only view") {
		t.Errorf("status while anchor holds the repo: exit %d, want 0 and %q:\n%s%s", code, want, out, stderr)
	}
	if !strings.Contains(out, "pinned unknown (the repo is locked by pid "+strconv.Itoa(pid)) {
		t.Errorf("status does not say the pins cannot be counted:\n%s", out)
	}
	code, doc, stderr := statusJSON(t, "--root", root, "--repo", repo)
	if code != 0 {
		t.Fatalf("status --json while anchor holds the repo: exit %d: %s", code, stderr)
	}
	lk, _ := doc["repo_locked"].(map[string]any)
	if lk == nil || lk["pid"] != float64(pid) || doc["anchors"] != records || doc["peer_id"] == "" || doc["daemon_running"] != false {
		t.Errorf("status --json read-only view: repo_locked %v, anchors %v (want %v), peer_id %v", doc["repo_locked"], doc["anchors"], records, doc["peer_id"])
	}
	if jobs, _ := doc["jobs"].([]any); len(jobs) == 0 {
		t.Errorf("the read-only view lists no jobs: %v", doc["jobs"])
	}
	held.cmd.Process.Signal(os.Interrupt)
	held.cmd.Wait()
	// Released: status opens the repo again and counts the pins.
	code, doc, stderr = statusJSON(t, "--root", root, "--repo", repo)
	if code != 0 || doc["repo_locked"] != nil || doc["pinned"] != records {
		t.Errorf("status after the run ended: exit %d repo_locked %v pinned %v: %s", code, doc["repo_locked"], doc["pinned"], stderr)
	}
}
