package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
)

// Governance JSON files of the SSID tree that have a top-level anchors key
// (issue 19.2). The second one has a manifest's whole shape (records with
// file_path, file_hash and ipfs_cid, statistics, manifest_version): only
// the chain tells it from a manifest, as one of the chain's records.
const (
	proofChainAnchors = "09_meta_identity/proof_chain_anchors.json"
	proofAnchorChain  = "24_meta_orchestration/registry/manifests/proof_anchor_chain_Q1_2026.json"
)

func proofChainAnchorsJSON() []byte {
	return []byte(`{
  "chain_id": "ssid-proof-chain",
  "anchors": [
    {"anchor_id": "root-24", "sha256": "ed83883ffcc664cf5a5c264e9daa04f702450aa4b1cc3a23d35786fcfc25cfe1", "anchored_at": "2025-10-11T15:02:37Z"}
  ]
}
`)
}

func proofAnchorChainJSON() []byte {
	return []byte(`{
  "manifest_version": "1.0.0",
  "quarter": "2026-Q1",
  "anchors": [
    {"file_path": "05_documentation/releases/SSID_Quarterly_Release_2026-Q1.zip", "file_name": "SSID_Quarterly_Release_2026-Q1.zip",
     "file_hash": "dc9bb56b17bbb7f5c4ba2ae0eea6befbf301b22a042f639f38866059aa92bee3", "ipfs_cid": "QmPZ9gcCEpqKTo6aq61g2nXGUhM4iCL3ewB6LDXZCtioEB"}
  ],
  "statistics": {"total_anchors": 1}
}
`)
}

// jsonAnchorsTree is vcAnchoredTree with the two governance JSON files,
// selected by a rule of the config, anchored in two runs: the manifest
// chain is run 2 -> run 1 -> the sample (seed) manifest.
func jsonAnchorsTree(t *testing.T) vcTree {
	t.Helper()
	tr := vcAnchoredTreeWith(t, map[string][]byte{proofChainAnchors: proofChainAnchorsJSON(), proofAnchorChain: proofAnchorChainJSON()}, withJSONAnchorsRule)
	if _, err := tree.AppendEvent(filepath.Join(tr.root, tree.DefaultPaths().EventsLog), tree.NewEvent{
		Timestamp: "2026-03-01T09:00:00Z", Event: "governance_review", Version: "v4.3.1", CommitHash: "abc123",
		Blueprint: "v4.3", Root24Lock: "active", ComplianceScore: "100/100", EmittedBy: "test",
	}); err != nil {
		t.Fatal(err)
	}
	vcWrite(t, filepath.Join(tr.root, proofAnchorChain), bytes.Replace(proofAnchorChainJSON(), []byte(`"total_anchors": 1`), []byte(`"total_anchors": 1, "checked": true`), 1))
	g, _, errb := vcGlobals(tr.root, tr.repo)
	withJSONAnchorsRule(g)
	if err := runAnchor(context.Background(), anchorOptions{}, g); err != nil {
		t.Fatalf("anchor: %v\n%s", err, errb)
	}
	return tr
}

// withJSONAnchorsRule adds a rule selecting the governance JSON files.
func withJSONAnchorsRule(g *globalOptions) {
	g.cfg.Anchor.Rules = append(g.cfg.Anchor.Rules, anchor.Rule{Match: []string{"*"}, Globs: []string{"09_meta_identity/*.json", "24_meta_orchestration/registry/manifests/proof_anchor_chain_*.json"}})
}

func manifestCID(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, tree.DefaultPaths().Manifest))
	if err != nil {
		t.Fatal(err)
	}
	c, err := node.ComputeCID(bytes.NewReader(b), mustParams(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.String()
}

func mustParams(t *testing.T) node.ImportParams {
	p, err := node.ParamsFor(node.CIDProfileDefault)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// recordCID is the CID the tree's manifest records for rel (its latest).
func recordCID(t *testing.T, root, rel string) string {
	t.Helper()
	c := ""
	for _, r := range readManifest(t, root).Records {
		if r.FilePath == rel {
			c = r.IPFSCID
		}
	}
	if c == "" {
		t.Fatalf("%s was not anchored", rel)
	}
	return c
}

// TestImportJSONWithAnchorsKeySetsChainHead: an export of a tree holding
// governance JSON files with an anchors key imports with the chain head
// set to the tree's manifest, and verify then checks it against that head
// (issue 19.2: main took those files for manifests, reported a fork, left
// the head unset, and the next verify passed with no rollback check).
func TestImportJSONWithAnchorsKeySetsChainHead(t *testing.T) {
	tr := jsonAnchorsTree(t)
	head := manifestCID(t, tr.root)
	dir, cars := vcExport(t, tr)
	audit := filepath.Join(t.TempDir(), "repo")
	if code, _, errb := runCLI(t, "--repo", audit, "init"); code != 0 {
		t.Fatal(errb)
	}
	code, out, errb := runCLI(t, append([]string{"--repo", audit, "--json", "import"}, cars...)...)
	var res struct {
		Head    string   `json:"chain_head"`
		Note    string   `json:"chain_head_note"`
		Chain   []string `json:"manifest_chain"`
		Content []string `json:"anchored_files_like_manifests"`
		Fork    bool     `json:"fork"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("import: exit %d %s\n%s", code, out, errb)
	}
	if res.Head != head || res.Fork || res.Note != "" || len(res.Chain) != 3 || res.Chain[0] != head {
		t.Fatalf("import: head %s (want %s), chain %v, note %q", res.Head, head, res.Chain, res.Note)
	}
	if got := chainHeadOf(t, audit); got != head {
		t.Fatalf("chain head recorded %q, want %s", got, head)
	}
	shaped := recordCID(t, tr.root, proofAnchorChain)
	if len(res.Content) == 0 || !strings.Contains(strings.Join(res.Content, " "), shaped) {
		t.Fatalf("the manifest-shaped %s (%s) is not named as an anchored file: %v", proofAnchorChain, shaped, res.Content)
	}
	// The export says which CARs hold the chain.
	g, eout, _ := vcGlobals(tr.root, tr.repo)
	g.JSON = true
	if err := runExport(context.Background(), exportOptions{Dir: dir}, g); err != nil {
		t.Fatal(err)
	}
	var exp struct {
		Chain []string `json:"manifest_chain"`
	}
	if json.Unmarshal(eout.Bytes(), &exp) != nil || len(exp.Chain) != 3 || filepath.Base(exp.Chain[0]) != head+".car" {
		t.Fatalf("export --json manifest_chain: %s", eout)
	}
	code, errb, _ = runCLI(t, "--root", tr.root, "--repo", audit, "verify") // the report: stdout
	if code != 0 || !strings.Contains(errb, "head    ok") || strings.Contains(errb, "rollback not checked") {
		t.Fatalf("verify on the audit repo: exit %d\n%s", code, errb)
	}
}

// forkedTrees anchors one tree, copies tree and repo, and anchors a
// different event in each: two histories from one manifest.
func forkedTrees(t *testing.T) (a, b vcTree) {
	t.Helper()
	a = vcAnchoredTree(t)
	dir := t.TempDir()
	b = vcTree{root: filepath.Join(dir, "root"), repo: filepath.Join(dir, "repo")}
	for src, dst := range map[string]string{a.root: b.root, a.repo: b.repo} {
		if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
	}
	for i, tr := range []vcTree{a, b} {
		if _, err := tree.AppendEvent(filepath.Join(tr.root, tree.DefaultPaths().EventsLog), tree.NewEvent{
			Timestamp: "2026-03-01T09:00:00Z", Event: fmt.Sprintf("governance_review_%d", i), Version: "v4.3.1", CommitHash: "abc",
			Blueprint: "v4.3", Root24Lock: "active", ComplianceScore: "100/100", EmittedBy: "test",
		}); err != nil {
			t.Fatal(err)
		}
		g, _, errb := vcGlobals(tr.root, tr.repo)
		if err := runAnchor(context.Background(), anchorOptions{}, g); err != nil {
			t.Fatalf("anchor: %v\n%s", err, errb)
		}
	}
	return a, b
}

// TestImportForkFails: a genuinely forked set of manifests makes import
// exit non-zero and leaves the chain head alone, whether the fork is among
// the imported CARs or between them and the repo's head (main exited 0
// with one warning line).
func TestImportForkFails(t *testing.T) {
	a, b := forkedTrees(t)
	headA, headB := manifestCID(t, a.root), manifestCID(t, b.root)
	_, carsA := vcExport(t, a)
	_, carsB := vcExport(t, b)

	audit := filepath.Join(t.TempDir(), "repo")
	if code, _, errb := runCLI(t, "--repo", audit, "init"); code != 0 {
		t.Fatal(errb)
	}
	code, out, errb := runCLI(t, append(append([]string{"--repo", audit, "import"}, carsA...), carsB...)...)
	errb = out + errb
	if code != exitFailure || !strings.Contains(errb, "the imported manifests fork") || !strings.Contains(errb, headA) || !strings.Contains(errb, headB) {
		t.Fatalf("import of two histories: exit %d\n%s", code, errb)
	}
	if got := chainHeadOf(t, audit); got != "" {
		t.Fatalf("a fork set the chain head to %s", got)
	}

	audit2 := filepath.Join(t.TempDir(), "repo")
	if code, _, errb := runCLI(t, "--repo", audit2, "init"); code != 0 {
		t.Fatal(errb)
	}
	if code, errb, _ := runCLI(t, append([]string{"--repo", audit2, "import"}, carsA...)...); code != 0 || !strings.Contains(errb, "chain head "+headA) {
		t.Fatalf("import of A: exit %d\n%s", code, errb)
	}
	code, out, errb = runCLI(t, append([]string{"--repo", audit2, "import"}, carsB...)...)
	errb = out + errb
	if code != exitFailure || !strings.Contains(errb, "does not descend from this repo's chain head "+headA) {
		t.Fatalf("import of B over A's head: exit %d\n%s", code, errb)
	}
	if got := chainHeadOf(t, audit2); got != headA {
		t.Fatalf("the head moved to %s", got)
	}
}

// verifyLast runs verify and returns its exit code, its last stderr line
// and its --json rollback verdict.
func verifyLast(t *testing.T, args ...string) (int, string, anchor.RollbackCheck, string) {
	t.Helper()
	code, errb, _ := runCLI(t, append([]string{}, append(args, "verify")...)...) // the report: stdout
	lines := strings.Split(strings.TrimSpace(errb), "\n")
	jcode, out, jerrb := runCLI(t, append([]string{"--json"}, append(args, "verify")...)...)
	var res verifyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || jcode != code {
		t.Fatalf("verify --json: exit %d (text: %d) %v\n%s\n%s", jcode, code, err, out, jerrb)
	}
	return code, lines[len(lines)-1], res.Rollback, errb
}

// TestVerifySaysWhenNoChainHeadWasChecked: a verify with no chain head to
// check against says so in its last line and in --json; when the repo
// recorded a head and the file is gone, it says so louder (issues 19.2 and
// 25.15: main printed "chain ok" for an older manifest, with no warning).
func TestVerifySaysWhenNoChainHeadWasChecked(t *testing.T) {
	tr := vcAnchoredTree(t)
	code, last, rb, out := verifyLast(t, "--root", tr.root, "--repo", tr.repo)
	if code != 0 || !rb.Checked || rb.Status != anchor.RollbackOK || strings.Contains(last, "rollback") || !strings.Contains(out, "head    ok") {
		t.Fatalf("with its head: exit %d %+v\n%s", code, rb, out)
	}

	// The head file removed, the older manifest put back.
	manPath := filepath.Join(tr.root, tree.DefaultPaths().Manifest)
	if err := os.Remove(filepath.Join(tr.repo, "ssid-anchor-chain-head")); err != nil {
		t.Fatal(err)
	}
	vcWrite(t, manPath, vcTestdata(t, "ipfs_anchor_manifest.json"))
	code, last, rb, out = verifyLast(t, "--root", tr.root, "--repo", tr.repo)
	if rb.Checked || rb.Status != anchor.RollbackHeadMissing || !strings.Contains(rb.Detail, filepath.Join(tr.repo, "ssid-anchor-chain-head")) {
		t.Fatalf("--json rollback with the head file gone: %+v", rb)
	}
	if !strings.Contains(last, "WARNING: rollback NOT checked, the chain head this repo recorded is gone") || !strings.Contains(out, "WARNING head missing") {
		t.Fatalf("verdict line with the head file gone: %q\n%s", last, out)
	}
	t.Logf("exit %d, last line: %s", code, last)

	// A repo that never anchored nor imported a manifest.
	fresh := initRepo(t)
	_, last, rb, _ = verifyLast(t, "--root", tr.root, "--repo", fresh)
	if rb.Checked || rb.Status != anchor.RollbackNoHead || !strings.HasSuffix(last, "rollback not checked: this repo has recorded no chain head") {
		t.Fatalf("fresh repo: %q %+v", last, rb)
	}

	// From CARs, without a repo.
	tr2 := vcAnchoredTree(t)
	dir, cars := vcExport(t, tr2)
	args := append([]string{"--repo", filepath.Join(t.TempDir(), "none"), "verify", "--manifest", filepath.Join(dir, "ipfs_anchor_manifest.json"), "--car"}, cars...)
	code, errb, _ := runCLI(t, args...) // the report: stdout
	lines := strings.Split(strings.TrimSpace(errb), "\n")
	if code != 0 || !strings.HasSuffix(lines[len(lines)-1], "OK; rollback not checked: no repo, so no chain head") {
		t.Fatalf("verify --car: exit %d\n%s", code, errb)
	}
	code, jout, _ := runCLI(t, append([]string{"--json"}, args...)...)
	var res verifyResult
	if code != 0 || json.Unmarshal([]byte(jout), &res) != nil || res.Rollback.Status != anchor.RollbackNoRepo || res.Rollback.Checked {
		t.Fatalf("verify --car --json: exit %d rollback %+v", code, res.Rollback)
	}
}

func repoPeerID(t *testing.T, repo string) string {
	t.Helper()
	n, err := node.Open(context.Background(), repo, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	return n.PeerID()
}

func otherPeerID(t *testing.T) string {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// TestVerifyTrustOnSeedChainAndFlagsAfterCARs: on a tree whose chain
// starts at the unsigned seed manifest, verify --trust passes (the seed is
// "unsigned, covered by" the first signed manifest), from the repo and
// from CARs; and `--car a.car b.car --trust P` parses, an unknown flag after
// the list exits 2 (issues 19.3, 19.4: main failed --trust on every real
// chain, and read --trust as a CAR path).
func TestVerifyTrustOnSeedChainAndFlagsAfterCARs(t *testing.T) {
	tr := vcAnchoredTree(t)
	owner := repoPeerID(t, tr.repo)
	code, out, errb := runCLI(t, "--root", tr.root, "--repo", tr.repo, "--json", "verify", "--trust", owner)
	var res verifyResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || !res.OK {
		t.Fatalf("verify --trust on the seed chain: exit %d\n%s\n%s", code, out, errb)
	}
	sigs := res.Signatures.Manifests
	if len(sigs) != 2 || sigs[1].Status != anchor.SigUnsigned || !sigs[1].OK || sigs[1].Detail != fmt.Sprintf("unsigned, covered by %s (written before manifests were signed; the signed manifest's previous_manifest_cid chain fixes its bytes)", sigs[0].CID) {
		t.Fatalf("seed manifest verdict: %+v", sigs)
	}

	dir, cars := vcExport(t, tr)
	manifest := filepath.Join(dir, "ipfs_anchor_manifest.json")
	if len(cars) < 3 {
		t.Fatalf("%d CARs", len(cars))
	}
	carArgs := func(cmd ...string) []string {
		return append(append([]string{"--repo", filepath.Join(t.TempDir(), "none")}, cmd...), append([]string{"--manifest", manifest, "--car"}, cars...)...)
	}
	if code, errb, _ := runCLI(t, append(carArgs("verify"), "--trust", owner)...); code != 0 || !strings.Contains(errb, "covered by its signature") {
		t.Fatalf("verify --car %d CARs --trust OWNER: exit %d\n%s", len(cars), code, errb)
	}
	if code, _, errb := runCLI(t, append(carArgs("anchor", "--verify"), "--trust", owner)...); code != 0 {
		t.Fatalf("anchor --verify --car ... --trust OWNER: exit %d\n%s", code, errb)
	}
	other := otherPeerID(t)
	if code, errb, _ := runCLI(t, append(carArgs("verify"), "--trust", other)...); code != exitFailure || !strings.Contains(errb, "signed by another key: "+owner+" is not trusted") {
		t.Fatalf("--trust after the CAR list was not applied: exit %d\n%s", code, errb)
	}
	if code, _, errb := runCLI(t, append(carArgs("verify"), "--trust="+owner, "--timeout", "10s")...); code != 0 {
		t.Fatalf("--trust=P --timeout 10s after the CAR list: exit %d\n%s", code, errb)
	}
	if code, _, errb := runCLI(t, append(carArgs("verify"), "--bogus")...); code != exitUsage || !strings.Contains(errb, "bogus") {
		t.Fatalf("an unknown flag after the CAR list: exit %d, want 2\n%s", code, errb)
	}
}

// TestVerifyAppendedRegistryLogE2E: an event appended after anchoring does
// not fail verify (the record of the log is a prefix of today's log, and
// the output says so); an old byte changed fails naming its offset; a
// changed file that the configured rules no longer select says so.
func TestVerifyAppendedRegistryLogE2E(t *testing.T) {
	tr := vcAnchoredTree(t)
	logPath := filepath.Join(tr.root, tree.DefaultPaths().EventsLog)
	// The rules no longer select the registry log nor the dashboard
	// markdown: the case of issue 19.5.
	cfg := filepath.Join(t.TempDir(), "appliance.json")
	vcWrite(t, cfg, []byte(`{"anchor": {"rules": [{"match": ["quarterly"], "globs": ["{dashboard_csv}"]}]}}`))
	if code, _, errb := runCLI(t, "--root", tr.root, "--repo", tr.repo, "event", "--event", "governance_review", "--version", "v4.3.1", "--hash", "abc"); code != 0 {
		t.Fatal(errb)
	}
	code, errb, _ := runCLI(t, "--root", tr.root, "--repo", tr.repo, "--config", cfg, "verify") // the report: stdout
	if code != 0 || !strings.Contains(errb, "registry events log grew by") || !strings.Contains(errb, "events were appended, which is not tampering") {
		t.Fatalf("verify after an append: exit %d\n%s", code, errb)
	}
	b, _ := os.ReadFile(logPath)
	at := bytes.Index(b, []byte(`"blueprint_tagged"`)) + 3
	line := bytes.Count(b[:at], []byte("\n")) + 1
	b[at] = 'X'
	vcWrite(t, logPath, b)
	code, errb, _ = runCLI(t, "--root", tr.root, "--repo", tr.repo, "--config", cfg, "verify")
	if code != exitFailure || !strings.Contains(errb, fmt.Sprintf("byte %d (line %d) differs", at, line)) {
		t.Fatalf("verify of a rewritten log: exit %d\n%s", code, errb)
	}
	md := filepath.Join(tr.root, tree.DefaultPaths().DashboardMarkdown)
	mb, _ := os.ReadFile(md)
	vcWrite(t, md, append(mb, "edited\n"...))
	_, errb, _ = runCLI(t, "--root", tr.root, "--repo", tr.repo, "--config", cfg, "verify") // the report: stdout
	if !strings.Contains(errb, "no rule of anchor.rules selects "+tree.DefaultPaths().DashboardMarkdown+" any more") {
		t.Fatalf("a changed file no rule selects:\n%s", errb)
	}
}
