package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/tree"
)

// scSignedTree is a tree with no manifest before this tool, anchored twice
// (kubo-default, then unixfs-v1-2025 after a quarterly release event with
// a 2.5 MiB bundle): both manifests of its chain are signed by the repo's
// key, which is returned as peer.
func scSignedTree(t *testing.T, withSeed bool) (tr vcTree, peerID string) {
	t.Helper()
	dir := t.TempDir()
	tr = vcTree{root: filepath.Join(dir, "root"), repo: filepath.Join(dir, "repo")}
	p := tree.DefaultPaths()
	vcWrite(t, filepath.Join(tr.root, p.EventsLog), vcTestdata(t, "registry_events.log"))
	vcWrite(t, filepath.Join(tr.root, p.DashboardCSV[0]), vcTestdata(t, "dashboard_data.csv"))
	if withSeed {
		vcWrite(t, filepath.Join(tr.root, p.Manifest), vcTestdata(t, "ipfs_anchor_manifest.json"))
	}
	vcWrite(t, filepath.Join(tr.root, p.DashboardMarkdown), bytes.Repeat([]byte("| metric | value |\n"), 40<<10)) // 760 KiB
	g, _, errb := vcGlobals(tr.root, tr.repo)
	ctx := context.Background()
	if err := runInit(ctx, initOptions{Profile: "air-gapped"}, g); err != nil {
		t.Fatal(err)
	}
	if err := runAnchor(ctx, anchorOptions{}, g); err != nil {
		t.Fatalf("anchor: %v\n%s", err, errb)
	}
	randomFile(t, filepath.Join(tr.root, tReleases, "SSID_Quarterly_Release_2026-Q1.zip"), 5<<19)
	if _, err := tree.AppendEvent(filepath.Join(tr.root, p.EventsLog), tree.NewEvent{
		Timestamp: "2026-03-01T09:00:00Z", Event: "quarterly_release_published", Version: "2026-Q1",
		CommitHash: "abc", Blueprint: "v4.3", Root24Lock: "active", ComplianceScore: "100/100", EmittedBy: "test",
	}); err != nil {
		t.Fatal(err)
	}
	g, out, errb := vcGlobals(tr.root, tr.repo)
	g.JSON = true
	if err := runAnchor(ctx, anchorOptions{CIDProfile: "unixfs-v1-2025"}, g); err != nil {
		t.Fatalf("anchor: %v\n%s", err, errb)
	}
	var conf struct{ Identity struct{ PeerID string } }
	b, err := os.ReadFile(filepath.Join(tr.repo, "config"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	var res anchor.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.SignedBy != conf.Identity.PeerID || !res.Rewritten {
		t.Fatalf("anchor --json: signed_by %q (err %v), want the repo's peer %s\n%s", res.SignedBy, err, conf.Identity.PeerID, out)
	}
	return tr, conf.Identity.PeerID
}

func scOtherPeer(t *testing.T) string {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(sk)
	return id.String()
}

// TestVerifyTrust: verify names the signer and the first manifest it
// signed; --trust (or anchor.trust) passes with the repo's peer ID and fails
// with another; a malformed peer ID is a usage error naming the flag or
// key.
func TestVerifyTrust(t *testing.T) {
	tr, owner := scSignedTree(t, false)
	other := scOtherPeer(t)

	g, _, _ := vcGlobals(tr.root, tr.repo)
	res, err := vcVerifyJSON(t, g, verifyOptions{})
	if err != nil || !res.OK {
		t.Fatalf("verify: %v %+v", err, res.Signatures)
	}
	if len(res.Chain.Manifests) != 2 || res.Signer == nil || res.Signer.PeerID != owner || res.Signer.Since.ManifestCID != res.Chain.Manifests[1].CID {
		t.Fatalf("signer %+v, chain %+v: want %s since the first manifest", res.Signer, res.Chain.Manifests, owner)
	}
	for _, m := range res.Signatures.Manifests {
		if m.Status != anchor.SigValid || m.PeerID != owner {
			t.Fatalf("signature verdict %+v", m)
		}
	}
	// The --json document has the documented shape.
	var doc map[string]any
	json.Unmarshal(g.stdout.(*bytes.Buffer).Bytes(), &doc)
	if s, ok := doc["signer"].(map[string]any); !ok || s["peer_id"] != owner || s["since"].(map[string]any)["manifest_cid"] == nil {
		t.Fatalf(`--json "signer" = %v`, doc["signer"])
	}

	t.Run("--trust the repo's peer", func(t *testing.T) {
		g, _, _ := vcGlobals(tr.root, tr.repo)
		if res, err := vcVerifyJSON(t, g, verifyOptions{Trust: []string{owner}}); err != nil || !res.OK {
			t.Fatalf("%v %+v", err, res.Signatures)
		}
	})
	t.Run("--trust another peer", func(t *testing.T) {
		g, out, _ := vcGlobals(tr.root, tr.repo)
		err := runVerify(context.Background(), verifyOptions{Trust: []string{other}}, g)
		if code, _ := exitCode(err); code != exitFailure {
			t.Fatalf("exit %d (%v), want 1", code, err)
		}
		if !strings.Contains(out.String(), "sig     FAILED") || !strings.Contains(out.String(), owner+" is not trusted") || !strings.Contains(err.Error(), "signature") {
			t.Fatalf("output does not name the untrusted signer:\n%s\n%v", out, err)
		}
	})
	t.Run("anchor.trust in the config", func(t *testing.T) {
		cfg := writeConfig(t, `{"anchor": {"trust": ["`+other+`"]}}`)
		code, stdout, stderr := runCLI(t, "--root", tr.root, "--repo", tr.repo, "--config", cfg, "verify")
		if code != exitFailure || !strings.Contains(stdout, "is not trusted") {
			t.Fatalf("exit %d:\n%s", code, stderr)
		}
		// --trust replaces the config's list.
		code, _, stderr = runCLI(t, "--root", tr.root, "--repo", tr.repo, "--config", cfg, "verify", "--trust", owner)
		if code != 0 {
			t.Fatalf("--trust over anchor.trust: exit %d:\n%s", code, stderr)
		}
	})
	t.Run("malformed peer IDs", func(t *testing.T) {
		code, _, stderr := runCLI(t, "--root", tr.root, "--repo", tr.repo, "verify", "--trust", "12D3KooWnot")
		if code != exitUsage || !strings.Contains(stderr, "--trust") {
			t.Fatalf("exit %d:\n%s", code, stderr)
		}
		cfg := writeConfig(t, `{"anchor": {"trust": ["`+owner+`", "QmWATWQ7fVPP2EFGu71UkfnqhYXDYH566qy47CnJDgvs8u"]}}`)
		code, _, stderr = runCLI(t, "--root", tr.root, "--repo", tr.repo, "--config", cfg, "verify")
		if code != exitUsage || !strings.Contains(stderr, "anchor.trust[1]") || !strings.Contains(stderr, "does not embed its public key") {
			t.Fatalf("exit %d:\n%s", code, stderr)
		}
	})
	t.Run("signature stripped, named even without --trust", func(t *testing.T) {
		man := filepath.Join(tr.root, tManifest)
		orig, _ := os.ReadFile(man)
		defer os.WriteFile(man, orig, 0o644)
		m, err := anchor.ParseManifest(orig)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := m.MarshalUnsigned()
		os.WriteFile(man, b, 0o644)
		code, stdout, stderr := runCLI(t, "--root", tr.root, "--repo", tr.repo, "verify")
		if code != exitFailure || !strings.Contains(stdout, "the signature was stripped") || !strings.Contains(stdout, "signer  none") {
			t.Fatalf("exit %d:\n%s\n%s", code, stdout, stderr)
		}
	})
}

// TestVerifyTrustAirGapped: export --car carries the signed manifests; the
// built binary verifies them with --trust from the CARs alone, with no repo
// (and no network namespace when unshare works); a manifest re-signed by
// another key fails there.
func TestVerifyTrustAirGapped(t *testing.T) {
	bin := anchorBinary(t)
	tr, owner := scSignedTree(t, false)
	out := filepath.Join(t.TempDir(), "out")
	home := t.TempDir()
	exe := func(wantCode int, args ...string) string {
		t.Helper()
		name, argv := bin, args
		if err := exec.Command("unshare", "-n", "true").Run(); err == nil {
			name, argv = "unshare", append([]string{"-n", bin}, args...)
		}
		cmd := exec.Command(name, argv...)
		cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantCode {
			t.Fatalf("ssid-anchor %v: exit %d, want %d\n%s%s", args, code, wantCode, o.String(), e.String())
		}
		return o.String() + e.String()
	}
	exe(0, "--root", tr.root, "--repo", tr.repo, "export", "--car", out)
	cars, _ := filepath.Glob(filepath.Join(out, "*.car"))
	manifest := filepath.Join(out, "ipfs_anchor_manifest.json")
	noRepo := filepath.Join(t.TempDir(), "no-repo")
	verify := func(code int, extra ...string) verifyResult {
		t.Helper()
		args := append([]string{"--json", "--repo", noRepo, "verify", "--manifest", manifest}, extra...)
		s := exe(code, append(append(args, "--car"), cars...)...)
		var res verifyResult
		if err := json.Unmarshal([]byte(s[strings.Index(s, "{"):strings.LastIndex(s, "}")+1]), &res); err != nil {
			t.Fatalf("%v\n%s", err, s)
		}
		return res
	}
	res := verify(0, "--trust", owner)
	// The previous manifest's signature was read from its CAR.
	if len(res.Signatures.Manifests) != 2 || res.Signatures.Manifests[1].Status != anchor.SigValid || res.Signer.PeerID != owner {
		t.Fatalf("signatures from the CARs: %+v signer %+v", res.Signatures, res.Signer)
	}
	if _, err := os.Stat(noRepo); err == nil {
		t.Fatal("verify --car created a repo")
	}

	// The carried manifest re-signed by another key: named, and a failure
	// with --trust. (Its old CAR no longer matches it: a forger leaves it
	// out.)
	cars = slices.DeleteFunc(cars, func(p string) bool { return filepath.Base(p) == res.ManifestCID+".car" })
	sk, _, _ := crypto.GenerateEd25519Key(nil)
	m, _, err := anchor.LoadManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Marshal(keySigner{sk})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(manifest, b, 0o644)
	res = verify(0)
	if len(res.Signatures.Warnings) == 0 || !strings.Contains(res.Signatures.Manifests[0].Detail, "the signing key changed") {
		t.Fatalf("without --trust a new signer must be named: %+v", res.Signatures)
	}
	res = verify(exitFailure, "--trust", owner)
	if res.Signatures.OK || !strings.Contains(res.Signatures.Manifests[0].Detail, "signed by another key") {
		t.Fatalf("with --trust: %+v", res.Signatures)
	}
}

// keySigner signs with an in-memory libp2p key (another box's identity).
type keySigner struct{ sk crypto.PrivKey }

func (k keySigner) PeerID() string {
	id, _ := peer.IDFromPrivateKey(k.sk)
	return id.String()
}
func (k keySigner) Sign(b []byte) ([]byte, error) { return k.sk.Sign(b) }

// TestVerifyWithIPFSScript runs scripts/verify-with-ipfs.sh with the stock
// kubo CLI first on PATH on a tree anchored with both CID profiles: its
// verdict on every record agrees with verify's; a changed file, and a
// record whose CID profile was edited, make it exit 1 naming the file.
func TestVerifyWithIPFSScript(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		t.Fatal("jq is not installed: scripts/verify-with-ipfs.sh needs it (apt-get install -y jq; .ci/run installs it)")
	}
	script, err := filepath.Abs("../../scripts/verify-with-ipfs.sh")
	if err != nil {
		t.Fatal(err)
	}
	ipfsDir := filepath.Dir(stockIPFS(t))
	tr, _ := scSignedTree(t, true)
	manifest := filepath.Join(tr.root, tManifest)
	run := func(wantCode int) string {
		t.Helper()
		cmd := exec.Command("bash", script, manifest, tr.root)
		cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + ipfsDir + string(os.PathListSeparator) + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantCode {
			t.Fatalf("verify-with-ipfs.sh: exit %d, want %d\n%s", code, wantCode, out)
		}
		return string(out)
	}
	out := run(0)

	g, _, _ := vcGlobals(tr.root, tr.repo)
	res, err := vcVerifyJSON(t, g, verifyOptions{})
	if err != nil || !res.OK {
		t.Fatalf("verify: %v", err)
	}
	profiles := map[string]int{}
	for _, r := range res.Records {
		n := r.Index + 1
		var file anchor.Check
		for _, c := range r.Checks {
			if c.Name == "file" {
				file = c
			}
		}
		okLine := "ok       " + itoa(n) + "  " + r.IPFSCID + "  " + r.FilePath + "  (" + r.CIDProfile + ","
		histLine := "history  " + itoa(n) + "  " + r.FilePath
		switch {
		case file.Status == anchor.StatusOK && r.OK:
			if !strings.Contains(out, okLine) {
				t.Errorf("record %d (%s): verify re-derived %s, the script does not say %q:\n%s", n, r.FilePath, r.IPFSCID, okLine, out)
			}
			profiles[r.CIDProfile]++
		case file.Status == anchor.StatusSkipped:
			if !strings.Contains(out, histLine) {
				t.Errorf("record %d (%s): verify skipped it as history, the script does not:\n%s", n, r.FilePath, out)
			}
		default:
			t.Errorf("record %d: unexpected verify verdict %+v", n, r.Checks)
		}
	}
	if profiles["kubo-default"] == 0 || profiles["unixfs-v1-2025"] == 0 {
		t.Fatalf("want records of both CID profiles checked by the script, got %v", profiles)
	}
	if !strings.Contains(out, "all match: ") {
		t.Fatalf("no summary:\n%s", out)
	}
	t.Logf("script and verify agree on %d records (%v)", len(res.Records), profiles)

	t.Run("changed file", func(t *testing.T) {
		bundle := filepath.Join(tr.root, tReleases, "SSID_Quarterly_Release_2026-Q1.zip")
		orig, _ := os.ReadFile(bundle)
		defer os.WriteFile(bundle, orig, 0o644)
		b := bytes.Clone(orig)
		b[len(b)/2] ^= 1
		os.WriteFile(bundle, b, 0o644)
		out := run(1)
		if !strings.Contains(out, "MISMATCH") || !strings.Contains(out, "05_documentation/releases/SSID_Quarterly_Release_2026-Q1.zip: sha256sum gives") {
			t.Fatalf("the changed file is not named:\n%s", out)
		}
		g, _, _ := vcGlobals(tr.root, tr.repo)
		if res, _ := vcVerifyJSON(t, g, verifyOptions{}); res.OK {
			t.Fatal("verify passed the changed file")
		}
	})
	t.Run("record claims the wrong CID profile", func(t *testing.T) {
		orig, _ := os.ReadFile(manifest)
		defer os.WriteFile(manifest, orig, 0o644)
		m, err := anchor.ParseManifest(orig)
		if err != nil {
			t.Fatal(err)
		}
		for i := range m.Records {
			if m.Records[i].CIDProfile == "unixfs-v1-2025" {
				m.Records[i].CIDProfile = "kubo-default"
			}
		}
		b, _ := m.MarshalUnsigned()
		os.WriteFile(manifest, b, 0o644)
		out := run(1)
		if !strings.Contains(out, "ipfs add -Q --only-hash (kubo-default) gives Qm") {
			t.Fatalf("the CID mismatch is not named:\n%s", out)
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }
