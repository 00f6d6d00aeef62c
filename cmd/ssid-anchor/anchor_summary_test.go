package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
)

// TestAnchorSummaryNamesAsTheManifest: a run that writes checkpoint
// manifests reports the written manifest's previous_manifest_cid (the last
// checkpoint), under that name, and lists the checkpoints; the real log's
// leading "Registry events initialized." line is skipped with a note, in
// text and --json (issue 19.7: main printed the seed's CID as "previous"
// and skipped the header silently).
func TestAnchorSummaryNamesAsTheManifest(t *testing.T) {
	dir := t.TempDir()
	tr := vcTree{root: filepath.Join(dir, "root"), repo: filepath.Join(dir, "repo")}
	p := tree.DefaultPaths()
	realLog := vcTestdata(t, "registry_events.log")
	if !strings.HasPrefix(string(realLog), tree.InitLine+"\n") {
		t.Fatalf("the sample log no longer starts with %q", tree.InitLine)
	}
	vcWrite(t, filepath.Join(tr.root, p.EventsLog), realLog)
	vcWrite(t, filepath.Join(tr.root, p.Manifest), vcTestdata(t, "ipfs_anchor_manifest.json"))
	vcWrite(t, filepath.Join(tr.root, p.DashboardCSV[0]), vcTestdata(t, "dashboard_data.csv"))
	vcWrite(t, filepath.Join(tr.root, p.DashboardMarkdown), []byte("# SSID Governance Dashboard\n"))
	seed := manifestCID(t, tr.root)

	g, out, errb := vcGlobals(tr.root, tr.repo)
	ctx := context.Background()
	if err := runInit(ctx, initOptions{Profile: node.ProfileAirGapped}, g); err != nil {
		t.Fatal(err)
	}
	// Every file is its own checkpoint: three manifests in one run.
	g.cfg.Anchor.Checkpoint = "1ns"
	out.Reset()
	errb.Reset()
	if err := runAnchor(ctx, anchorOptions{}, g); err != nil {
		t.Fatalf("anchor: %v\n%s", err, errb)
	}
	m, _, err := anchor.LoadManifest(filepath.Join(tr.root, p.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	// Checkpoints chain to the manifest the run started from, as the final
	// manifest does (issue 22: one chain link per run).
	if m.PreviousCID != seed {
		t.Fatalf("previous_manifest_cid %q, want the seed %s (the manifest the run started from)", m.PreviousCID, seed)
	}
	text := out.String() // the summary is the result: stdout
	if !strings.Contains(text, "previous_manifest_cid "+m.PreviousCID+")") {
		t.Fatalf("summary does not name the manifest's previous_manifest_cid %s:\n%s", m.PreviousCID, text)
	}
	const listed = "checkpoint manifests written on the way (oldest first): "
	i := strings.Index(text, listed)
	if i < 0 {
		t.Fatalf("the run wrote no checkpoint, or they are not listed (the test needs one):\n%s", text)
	}
	if cps := text[i+len(listed):]; strings.Contains(cps[:strings.IndexByte(cps+"\n", '\n')], m.PreviousCID) {
		t.Fatalf("a checkpoint is listed as the previous manifest:\n%s", text)
	}
	if !strings.Contains(errb.String(), `note: registry log line 1: "Registry events initialized." is the log's header, not an event; skipped`) {
		t.Fatalf("the header line was skipped without a note on stderr:\n%s", errb)
	}

	// --json: the same names; a second run reads from the cursor, past
	// the header, and says nothing about it.
	if _, err := tree.AppendEvent(filepath.Join(tr.root, p.EventsLog), tree.NewEvent{
		Timestamp: "2026-03-01T09:00:00Z", Event: "governance_review", Version: "v4.3.1", CommitHash: "abc",
		Blueprint: "v4.3", Root24Lock: "active", ComplianceScore: "100/100", EmittedBy: "test",
	}); err != nil {
		t.Fatal(err)
	}
	g2, out2, errb2 := vcGlobals(tr.root, tr.repo)
	g2.JSON = true
	if err := runAnchor(ctx, anchorOptions{}, g2); err != nil {
		t.Fatalf("anchor: %v\n%s", err, errb2)
	}
	var res struct {
		Previous    string   `json:"previous_manifest_cid"`
		Checkpoints []string `json:"checkpoint_manifest_cids"`
		Header      int      `json:"log_header_line"`
	}
	if err := json.Unmarshal(out2.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	m2, _, _ := anchor.LoadManifest(filepath.Join(tr.root, p.Manifest))
	if res.Previous != m2.PreviousCID || res.Header != 0 {
		t.Fatalf("--json previous_manifest_cid %s (manifest: %s), log_header_line %d", res.Previous, m2.PreviousCID, res.Header)
	}
	if b, _ := os.ReadFile(filepath.Join(tr.root, p.EventsLog)); !strings.HasPrefix(string(b), tree.InitLine) {
		t.Fatal("the log lost its header")
	}
}
