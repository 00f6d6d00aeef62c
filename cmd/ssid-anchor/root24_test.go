package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssid/ssid-anchor/anchor/tree"
)

// ssidExceptionsTree is newTree with the SSID repository's own exceptions
// file (testdata copy of the sample: allowed_directories / allowed_files
// under root_level_exceptions, named groups, one block list) and the root
// entries it allows.
func ssidExceptionsTree(t *testing.T) string {
	t.Helper()
	root := newTree(t)
	b, err := os.ReadFile("testdata/root_level_exceptions.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, tree.RootExceptionsPath), b)
	for _, d := range []string{".git", ".github", ".githooks", ".venv", ".claude", ".pytest_cache"} {
		mustMkdir(t, filepath.Join(root, d))
	}
	for _, f := range []string{"LICENSE", "pytest.ini", ".gitignore", ".gitattributes", ".gitmodules", ".pre-commit-config.yaml"} {
		mustWrite(t, filepath.Join(root, f), []byte("x\n"))
	}
	return root
}

// TestGuardSSIDExceptionsFile: guard on the real exceptions file says
// active on a root that obeys it and names the offending entry on one that
// does not (issue 19.1: main's guard exited 1, "neither allowed_directories
// nor allowed_files is present").
func TestGuardSSIDExceptionsFile(t *testing.T) {
	root := ssidExceptionsTree(t)
	code, out, errb := runCLI(t, "--root", root, "--repo", t.TempDir(), "guard")
	if code != 0 || strings.TrimSpace(out) != "Root-24-LOCK: active" {
		t.Fatalf("guard on a root obeying the real exceptions file: exit %d %q\n%s", code, out, errb)
	}
	mustMkdir(t, filepath.Join(root, "scratch"))
	code, out, errb = runCLI(t, "--root", root, "--repo", t.TempDir(), "guard")
	if code != exitFailure || strings.TrimSpace(out) != "Root-24-LOCK: violated" || !strings.Contains(errb, "entries not allowed at the root: scratch") {
		t.Fatalf("guard with a stray scratch/: exit %d %q\n%s", code, out, errb)
	}
}

// TestRoot24UnknownEverywhere: with an exceptions file that cannot be
// understood, event records "unknown" (never "violated") in the registry
// log, and guard, telemetry, the daemon's /status and its console all say
// unknown, with the reason (issue 19.1: main recorded "violated", telemetry
// said unknown, and the console showed a red "violated" banner).
func TestRoot24UnknownEverywhere(t *testing.T) {
	root := ssidExceptionsTree(t)
	sampleTelemetryConfig(t, root)
	csvb, err := os.ReadFile("testdata/dashboard_data.csv")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, tree.DefaultPaths().DashboardCSV[0]), csvb)
	// A typo an editor could make: an unclosed flow list.
	mustWrite(t, filepath.Join(root, tree.RootExceptionsPath), []byte("root_level_exceptions:\n  allowed_files:\n    project_metadata: [\"LICENSE\", \"README.md\"\n"))
	repo := initRepo(t)

	code, out, errb := runCLI(t, "--root", root, "--repo", repo, "guard")
	if code != exitFailure || strings.TrimSpace(out) != "Root-24-LOCK: unknown" || !strings.Contains(errb, tree.RootExceptionsPath) || strings.Contains(out+errb, "violated") {
		t.Fatalf("guard: exit %d %q\n%s", code, out, errb)
	}

	code, _, errb = runCLI(t, "--root", root, "--repo", repo, "event", "--event", "governance_review", "--version", "v4.3.0", "--hash", "abc123")
	if code != 0 {
		t.Fatalf("event: exit %d\n%s", code, errb)
	}
	var last tree.Event
	if _, err := tree.ReadEventsFile(filepath.Join(root, tLog), func(e tree.Event) error { last = e; return nil }); err != nil {
		t.Fatal(err)
	}
	if last.Name() != "governance_review" || last.Field("root_24_lock") != "unknown" {
		t.Fatalf("event recorded root_24_lock %q in %s", last.Field("root_24_lock"), last.Raw)
	}
	if !strings.Contains(errb, "recording it as unknown") || !strings.Contains(errb, tree.RootExceptionsPath) {
		t.Errorf("event did not say why once: %s", errb)
	}

	code, out, errb = runCLI(t, "--root", root, "--repo", repo, "--json", "telemetry", "--dry-run")
	var rep struct {
		Lock string `json:"root_24_lock"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Lock != "unknown" {
		t.Fatalf("telemetry: exit %d %s\n%s", code, out, errb)
	}

	d := startDaemon(t, root, repo, nil)
	var st struct {
		Lock     string   `json:"root_24_lock"`
		Reason   string   `json:"root_24_lock_reason"`
		Problems []string `json:"root_24_lock_problems"`
	}
	if body := d.getOK(t, "/status"); json.Unmarshal([]byte(body), &st) != nil || st.Lock != "unknown" || !strings.Contains(st.Reason, tree.RootExceptionsPath) {
		t.Fatalf("/status: %s", body)
	}
	page := d.getOK(t, "/")
	if !strings.Contains(page, "<strong>Root-24-LOCK unknown:</strong>") || !strings.Contains(page, `<span class="badge warn"`) || strings.Contains(page, "violated") {
		i := strings.Index(page, "Root-24-LOCK")
		t.Fatalf("console: %.600s", page[max(0, i):])
	}
	if code := d.stop(t); code != 0 {
		t.Errorf("daemon exit %d", code)
	}
}
