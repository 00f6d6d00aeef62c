package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssid/ssid-anchor/anchor/release"
)

// releaseTelemetry writes the seed telemetry config (testdata/release),
// edited by fn, into root.
func releaseTelemetry(t *testing.T, root string, fn func(map[string]any)) {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(readFile(t, "testdata/release/telemetry_config.json"), &cfg); err != nil {
		t.Fatal(err)
	}
	if fn != nil {
		fn(cfg)
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	mustWrite(t, filepath.Join(root, tTelemetryConfig), b)
}

type releaseDoc struct {
	Quarter string `json:"quarter"`
	OK      bool   `json:"ok"`
	Steps   []struct {
		Name, Status, Summary, Error string
	} `json:"steps"`
	Bundle *release.Result     `json:"bundle"`
	IPFS   *release.IPFSAnchor `json:"ipfs"`
}

func (d releaseDoc) statuses() string {
	var s []string
	for _, st := range d.Steps {
		s = append(s, st.Name+"="+st.Status)
	}
	return strings.Join(s, " ")
}

func parseRelease(t *testing.T, out string) releaseDoc {
	t.Helper()
	var d releaseDoc
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("release --json: %v\n%s", err, out)
	}
	return d
}

// TestReleasePipeline: bundle → anchor → remote pin → telemetry as one
// command. The bundle's CID in the release manifest is what stock `ipfs
// add -Q` gives for the zip, stock kubo sees it pinned in our repo, the
// release notice reaches a loopback webhook through notify_on_release, and
// a second run changes nothing and sends nothing.
func TestReleasePipeline(t *testing.T) {
	const q = "2026-Q3"
	root := bundleTree(t, q)
	repo := initRepo(t)
	h := newHook(t, 200)
	releaseTelemetry(t, root, withWebhook(h.URL))
	gh := filepath.Join(t.TempDir(), "github_output")

	code, out, errb := runCLI(t, "--root", root, "--repo", repo, "--json", "release", "--quarter", q, "--github-output", gh)
	if code != 0 {
		t.Fatalf("release: exit %d\n%s\n%s", code, out, errb)
	}
	d := parseRelease(t, out)
	if got := d.statuses(); got != "bundle=ok anchor=ok remote-pin=skipped telemetry=ok" || !d.OK {
		t.Fatalf("steps: %s\n%s", got, out)
	}
	if !strings.HasPrefix(d.Steps[2].Summary, "no remote pinning service configured") {
		t.Errorf("remote-pin summary %q", d.Steps[2].Summary)
	}
	zip := filepath.Join(root, fmt.Sprintf(tReleaseZip, q))
	sum := sha256File(t, zip)
	want := stockAdd(t, filepath.Join(t.TempDir(), "stock"), "test", zip)
	var man release.Manifest
	if err := json.Unmarshal(readFile(t, filepath.Join(root, fmt.Sprintf(tReleaseMan, q))), &man); err != nil {
		t.Fatal(err)
	}
	var ipfs release.IPFSAnchor
	if err := json.Unmarshal(man.ExternalAnchors["ipfs"], &ipfs); err != nil {
		t.Fatalf("external_anchors.ipfs: %v", err)
	}
	if ipfs.CID != want || d.IPFS == nil || d.IPFS.CID != want || !ipfs.Pinned || ipfs.GatewayURL != "https://ipfs.io/ipfs/"+want || ipfs.PinnedAt == "" {
		t.Fatalf("external_anchors.ipfs %+v, want cid %s (stock ipfs add -Q)", ipfs, want)
	}
	if man.Hash != sum {
		t.Errorf("manifest hash %s, zip %s", man.Hash, sum)
	}
	if !pinnedSet(t, repo)[want] {
		t.Errorf("stock ipfs pin ls does not list the bundle %s as pinned", want)
	}
	var ef release.EventFile
	if err := json.Unmarshal(readFile(t, filepath.Join(root, fmt.Sprintf(tReleaseEvent, q))), &ef); err != nil || ef.ProofAnchors.IPFSCID != want {
		t.Errorf("event file proof_anchors.ipfs_cid %q (%v)", ef.ProofAnchors.IPFSCID, err)
	}
	ghOut := string(readFile(t, gh))
	for _, line := range []string{"quarter=" + q, "bundle_hash=" + sum, "ipfs_cid=" + want, "version=v4.3-Q3-2026", "status=ok",
		"bundle=" + fmt.Sprintf(tReleaseZip, q), "event_proof_anchor=" + d.Bundle.EventProofAnchor} {
		if !strings.Contains(ghOut, line+"\n") {
			t.Errorf("--github-output lacks %q:\n%s", line, ghOut)
		}
	}
	// Everything anchored still matches the tree: the release manifest
	// got its CID before it was anchored, not after.
	if code, out, errb := runCLI(t, "--root", root, "--repo", repo, "verify"); code != 0 {
		t.Fatalf("verify after release: exit %d\n%s%s", code, out, errb)
	}
	bodies := h.received()
	if len(bodies) != 1 || !bytes.Contains(bodies[0], []byte(release.EventName)) {
		t.Fatalf("webhook got %d messages, want 1 release notice: %s", len(bodies), bytes.Join(bodies, []byte("\n")))
	}

	// Again, human output with the PR body: nothing new anywhere.
	logBefore := readFile(t, filepath.Join(root, tLog))
	manBefore := readFile(t, filepath.Join(root, fmt.Sprintf(tReleaseMan, q)))
	code, out, errb = runCLI(t, "--root", root, "--repo", repo, "release", "--quarter", q, "--markdown")
	if code != 0 {
		t.Fatalf("second release: exit %d\n%s", code, errb)
	}
	for _, s := range []string{"[ok] bundle: up to date", "[ok] anchor: 0 files anchored; bundle cid " + want, "[skipped] remote-pin: no remote pinning service configured", "[ok] telemetry:"} {
		if !strings.Contains(errb, s) {
			t.Errorf("stderr lacks %q:\n%s", s, errb)
		}
	}
	for _, s := range []string{"### Proof-Anchor", "- **Bundle SHA-256:** `" + sum + "`", "- **IPFS CID:** `" + want + "`", "| remote-pin | skipped | no remote pinning service configured"} {
		if !strings.Contains(out, s) {
			t.Errorf("markdown lacks %q:\n%s", s, out)
		}
	}
	if !bytes.Equal(readFile(t, filepath.Join(root, tLog)), logBefore) || !bytes.Equal(readFile(t, filepath.Join(root, fmt.Sprintf(tReleaseMan, q))), manBefore) {
		t.Error("a second release with the same inputs changed the log or the release manifest")
	}
	if code, out, errb := runCLI(t, "--root", root, "--repo", repo, "verify"); code != 0 {
		t.Fatalf("verify after the second release: exit %d\n%s%s", code, out, errb)
	}
	if n := len(h.received()); n != 1 {
		t.Errorf("the second release sent %d more messages", n-1)
	}
}

// TestReleaseFailedSteps: a failed step fails the command after the steps
// that can still run: without a required file the bundle fails, anchor and
// remote pin (which need it) do not run, telemetry still does (here it is
// disabled: skipped); with the bundle built but no repo, anchor fails with
// the repo's exit code 3.
func TestReleaseFailedSteps(t *testing.T) {
	const q = "2026-Q3"
	root := bundleTree(t, q)
	releaseTelemetry(t, root, func(cfg map[string]any) { cfg["enabled"] = false })
	if err := os.Remove(filepath.Join(root, tOpsGuide)); err != nil {
		t.Fatal(err)
	}
	noRepo := filepath.Join(t.TempDir(), "none")
	code, out, errb := runCLI(t, "--root", root, "--repo", noRepo, "--json", "release", "--quarter", q)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errb)
	}
	d := parseRelease(t, out)
	if got := d.statuses(); got != "bundle=failed anchor=not_run remote-pin=not_run telemetry=skipped" || d.OK {
		t.Fatalf("steps: %s\n%s", got, out)
	}
	if !strings.Contains(d.Steps[0].Error, tOpsGuide) || !strings.Contains(d.Steps[3].Summary, "telemetry disabled") {
		t.Errorf("steps: %+v", d.Steps)
	}
	if _, err := os.Stat(filepath.Join(root, fmt.Sprintf(tReleaseZip, q))); err == nil {
		t.Error("a zip was written")
	}

	mustWrite(t, filepath.Join(root, tOpsGuide), []byte("# guide\n"))
	code, out, errb = runCLI(t, "--root", root, "--repo", noRepo, "release", "--quarter", q)
	if code != 3 || !strings.Contains(out, "[ok] bundle:") || !strings.Contains(out, "[failed] anchor:") ||
		!strings.Contains(out, "[not_run] remote-pin: needs anchor") || !strings.Contains(out, "[skipped] telemetry: telemetry disabled") {
		t.Fatalf("exit %d, want 3\n%s\n%s", code, out, errb)
	}
	if code, _, errb := runCLI(t, "--root", root, "--json", "release", "--markdown"); code != 2 {
		t.Errorf("--json with --markdown: exit %d: %s", code, errb)
	}
}

// TestReleaseAfterSeparateAnchor: bundle, then a plain anchor run (which
// anchors the release manifest as it is), then release: the release finds
// the bundle's CID, leaves the anchored manifest alone, and verify passes.
func TestReleaseAfterSeparateAnchor(t *testing.T) {
	const q = "2026-Q2"
	root := bundleTree(t, q)
	repo := initRepo(t)
	for _, args := range [][]string{{"bundle", "--quarter", q}, {"anchor"}} {
		if code, _, errb := runCLI(t, append([]string{"--root", root, "--repo", repo}, args...)...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, errb)
		}
	}
	manBefore := readFile(t, filepath.Join(root, fmt.Sprintf(tReleaseMan, q)))
	code, out, errb := runCLI(t, "--root", root, "--repo", repo, "--json", "release", "--quarter", q)
	if code != 0 {
		t.Fatalf("release: exit %d\n%s\n%s", code, out, errb)
	}
	d := parseRelease(t, out)
	zip := filepath.Join(root, fmt.Sprintf(tReleaseZip, q))
	if want := stockAdd(t, filepath.Join(t.TempDir(), "stock"), "test", zip); d.IPFS == nil || d.IPFS.CID != want {
		t.Fatalf("ipfs %+v, want cid %s", d.IPFS, want)
	}
	if !strings.Contains(d.Steps[1].Summary, "left unchanged") || !bytes.Equal(readFile(t, filepath.Join(root, fmt.Sprintf(tReleaseMan, q))), manBefore) {
		t.Errorf("the anchored release manifest was changed: %s", d.Steps[1].Summary)
	}
	if code, out, errb := runCLI(t, "--root", root, "--repo", repo, "verify"); code != 0 {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errb)
	}
}

// TestReleaseNoticeFiltered: with event_filters.notify_on_release false the
// telemetry step still runs, says the notice was filtered out, and the
// webhook gets nothing.
func TestReleaseNoticeFiltered(t *testing.T) {
	const q = "2026-Q1"
	root := bundleTree(t, q)
	repo := initRepo(t)
	h := newHook(t, 200)
	releaseTelemetry(t, root, func(cfg map[string]any) {
		withWebhook(h.URL)(cfg)
		cfg["event_filters"].(map[string]any)["notify_on_release"] = false
	})
	code, out, errb := runCLI(t, "--root", root, "--repo", repo, "release", "--quarter", q)
	if code != 0 {
		t.Fatalf("release: exit %d\n%s", code, errb)
	}
	if !strings.Contains(out, "[ok] telemetry: release notice filtered out (event_filters.notify_on_release: false)") {
		t.Errorf("stdout:\n%s", out)
	}
	if n := len(h.received()); n != 0 {
		t.Errorf("webhook got %d messages: %s", n, bytes.Join(h.received(), []byte("\n")))
	}
}
