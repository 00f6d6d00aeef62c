package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/node"
)

func readManifest(t testing.TB, root string) *anchor.Manifest {
	t.Helper()
	m, _, err := anchor.LoadManifest(filepath.Join(root, tManifest))
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	return m
}

func randomFile(t testing.TB, path string, size int64) {
	t.Helper()
	mustMkdir(t, filepath.Dir(path))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		rand.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		left -= n
	}
}

func initRepo(t testing.TB) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	if code, _, stderr := runCLI(t, "--repo", repo, "init", "--profile", "air-gapped"); code != 0 {
		t.Fatalf("init: exit %d: %s", code, stderr)
	}
	return repo
}

// TestAnchorCIDParity: the manifest's CIDs are what stock `ipfs add -Q`
// gives, for the default import and for kubo's unixfs-v1-2025 profile.
func TestAnchorCIDParity(t *testing.T) {
	sizes := []int64{0, 1, 256<<10 - 1, 256 << 10, 256<<10 + 1, 1<<20 - 1, 1 << 20, 1<<20 + 1, 10 << 20, 100 << 20}
	if testing.Short() {
		sizes = sizes[:9]
	}
	for _, tc := range []struct{ profile, kuboProfiles string }{
		{"kubo-default", "test"},
		{"unixfs-v1-2025", "test,unixfs-v1-2025"},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			root := newTree(t)
			repo := initRepo(t)
			for _, s := range sizes {
				randomFile(t, filepath.Join(root, tReleases, fmt.Sprintf("parity_%d.zip", s)), s)
			}
			if code, _, stderr := runCLI(t, "--root", root, "event", "--event", "quarterly_release_published", "--version", "v9.9.9", "--hash", "x"); code != 0 {
				t.Fatalf("event: %s", stderr)
			}
			code, _, stderr := runCLI(t, "--root", root, "--repo", repo, "anchor", "--cid-profile", tc.profile)
			if code != 0 {
				t.Fatalf("anchor: exit %d: %s", code, stderr)
			}
			m := readManifest(t, root)
			stockRepo := filepath.Join(t.TempDir(), "stock")
			seen := 0
			for _, r := range m.Records {
				want := stockAdd(t, stockRepo, tc.kuboProfiles, filepath.Join(root, r.FilePath))
				if r.IPFSCID != want {
					t.Errorf("%s (%d bytes): manifest CID %s, stock ipfs add -Q %s", r.FilePath, r.FileSize, r.IPFSCID, want)
				}
				if r.CIDProfile != tc.profile {
					t.Errorf("%s: cid_profile %q", r.FilePath, r.CIDProfile)
				}
				if strings.HasPrefix(r.FilePath, tReleases) {
					seen++
				}
			}
			if seen != len(sizes) {
				t.Errorf("%d release files recorded, want %d", seen, len(sizes))
			}
		})
	}
}

// TestAnchorIdempotentKeepsHistory: a second run adds nothing; after a new
// event only the changed log gets a new record, and the old one stays.
func TestAnchorIdempotentKeepsHistory(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	mustWrite(t, filepath.Join(root, "05_documentation/reports/dashboard/SSID_Governance_Dashboard.md"), []byte("# dash\n"))

	code, out, stderr := runCLI(t, "--json", "--root", root, "--repo", repo, "anchor")
	if code != 0 {
		t.Fatalf("first anchor: exit %d: %s", code, stderr)
	}
	var first anchor.Result
	if err := json.Unmarshal([]byte(out), &first); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if first.NewEvents != 12 || len(first.Records) != 2 {
		t.Fatalf("first run: %d events, %d records (%+v)", first.NewEvents, len(first.Records), first.Records)
	}
	before, _ := os.ReadFile(filepath.Join(root, tManifest))

	code, out, _ = runCLI(t, "--json", "--root", root, "--repo", repo, "anchor")
	var second anchor.Result
	json.Unmarshal([]byte(out), &second)
	if code != 0 || len(second.Records) != 0 || second.NewEvents != 0 || second.Rewritten {
		t.Fatalf("second run: exit %d, %+v", code, second)
	}
	after, _ := os.ReadFile(filepath.Join(root, tManifest))
	if !bytes.Equal(before, after) {
		t.Fatal("a run with nothing new rewrote the manifest")
	}

	if code, _, stderr := runCLI(t, "--root", root, "event", "--event", "blueprint_tagged", "--version", "v4.3.0", "--hash", "abc123"); code != 0 {
		t.Fatalf("event: %s", stderr)
	}
	code, out, stderr = runCLI(t, "--json", "--root", root, "--repo", repo, "anchor")
	var third anchor.Result
	json.Unmarshal([]byte(out), &third)
	if code != 0 || third.NewEvents != 1 || len(third.Records) != 1 || third.Records[0].FilePath != tLog {
		t.Fatalf("after event: exit %d %s %+v", code, stderr, third)
	}
	if third.PreviousCID != first.ManifestCID {
		t.Errorf("chain: previous_manifest_cid %s, want the last manifest's CID %s", third.PreviousCID, first.ManifestCID)
	}
	m := readManifest(t, root)
	var logRecs []anchor.Record
	for _, r := range m.Records {
		if r.FilePath == tLog {
			logRecs = append(logRecs, r)
		}
	}
	if len(logRecs) != 2 || logRecs[0].FileHash == logRecs[1].FileHash {
		t.Fatalf("log history: %+v", logRecs)
	}
	if logRecs[1].EventType != "blueprint_tagged" || logRecs[1].EventVersion != "v4.3.0" {
		t.Errorf("new log record attributed to %s %s", logRecs[1].EventType, logRecs[1].EventVersion)
	}
	var stats struct {
		Total int `json:"total_anchors"`
		Files int `json:"total_files_anchored"`
	}
	raw, _ := m.Get("statistics")
	json.Unmarshal(raw, &stats)
	if stats.Total != 3 || stats.Files != 2 {
		t.Errorf("statistics %+v, want 3 anchors of 2 files", stats)
	}
}

func TestAnchorGitHubOutputAndMarkdown(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	randomFile(t, filepath.Join(root, tReleases, "SSID_Quarterly_Release_2026-Q1.zip"), 5000)
	randomFile(t, filepath.Join(root, tReleases, "SSID_Quarterly_Release_2025-Q4.zip"), 5000)
	runCLI(t, "--root", root, "event", "--event", "governance_release_published", "--version", "v4.2.0-Q1-2026", "--hash", "h")
	ghOut := filepath.Join(t.TempDir(), "gh")
	code, out, stderr := runCLI(t, "--root", root, "--repo", repo, "anchor", "--github-output", ghOut, "--markdown")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	m := readManifest(t, root)
	var bundle *anchor.Record
	for i, r := range m.Records {
		if strings.HasSuffix(r.FilePath, "2026-Q1.zip") {
			bundle = &m.Records[i]
		}
		if strings.HasSuffix(r.FilePath, "2025-Q4.zip") && r.EventType == "governance_release_published" {
			t.Errorf("the Q1 release event anchored the Q4 bundle")
		}
	}
	if bundle == nil {
		t.Fatal("bundle not anchored")
	}
	gh, _ := os.ReadFile(ghOut)
	if !strings.Contains(string(gh), "ipfs_cid="+bundle.IPFSCID+"\n") || !strings.Contains(string(gh), "manifest_cid=Qm") || !strings.Contains(string(gh), "anchored=") {
		t.Errorf("github output:\n%s", gh)
	}
	for _, want := range []string{"### Proof-Anchor", bundle.FileHash, bundle.IPFSCID, "https://ipfs.io/ipfs/" + bundle.IPFSCID} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
}

func TestAnchorRefusesPathsOutsideRoot(t *testing.T) {
	outside := t.TempDir()
	mustWrite(t, filepath.Join(outside, "secret.zip"), []byte("secret"))
	for _, tc := range []struct {
		name   string
		setup  func(root string) []string // returns extra global flags
		code   int
		expect string
	}{
		{"dotdot rule", func(root string) []string {
			return []string{"--config", writeConfig(t, `{"anchor":{"rules":[{"match":["*"],"globs":["../`+filepath.Base(outside)+`/*.zip"]}]}}`)}
		}, exitUsage, "outside"},
		{"absolute rule", func(root string) []string {
			return []string{"--config", writeConfig(t, `{"anchor":{"rules":[{"match":["*"],"globs":["`+outside+`/*.zip"]}]}}`)}
		}, exitUsage, "relative"},
		{"absolute events log", func(root string) []string {
			return []string{"--config", writeConfig(t, `{"paths":{"events_log":"/etc/passwd"}}`)}
		}, exitUsage, "paths.events_log"},
		{"symlink escaping", func(root string) []string {
			mustMkdir(t, filepath.Join(root, tReleases))
			if err := os.Symlink(filepath.Join(outside, "secret.zip"), filepath.Join(root, tReleases, "evil.zip")); err != nil {
				t.Fatal(err)
			}
			runCLI(t, "--root", root, "event", "--event", "quarterly_release", "--version", "v1", "--hash", "h")
			return nil
		}, exitFailure, "outside"},
		{"symlinked directory escaping", func(root string) []string {
			mustMkdir(t, filepath.Join(root, "05_documentation"))
			if err := os.Symlink(outside, filepath.Join(root, tReleases)); err != nil {
				t.Fatal(err)
			}
			runCLI(t, "--root", root, "event", "--event", "quarterly_release", "--version", "v1", "--hash", "h")
			return nil
		}, exitFailure, "outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newTree(t)
			repo := initRepo(t)
			before, _ := os.ReadFile(filepath.Join(root, tManifest))
			args := append([]string{"--root", root, "--repo", repo}, tc.setup(root)...)
			code, _, stderr := runCLI(t, append(args, "anchor")...)
			if code != tc.code || !strings.Contains(stderr, tc.expect) {
				t.Fatalf("exit %d (want %d), stderr: %s", code, tc.code, stderr)
			}
			after, _ := os.ReadFile(filepath.Join(root, tManifest))
			if !bytes.Equal(before, after) {
				t.Error("the manifest changed although the run was refused")
			}
		})
	}
}

// releaseTree is a tree and repo where a new quarterly event calls for one
// random release bundle, big.zip, of size bytes.
func releaseTree(t testing.TB, size int64) (root, repo string) {
	t.Helper()
	root = newTree(t)
	repo = initRepo(t)
	randomFile(t, filepath.Join(root, tReleases, "big.zip"), size)
	runCLI(t, "--root", root, "event", "--event", "quarterly_release", "--version", "v1", "--hash", "h")
	return root, repo
}

func writeConfig(t testing.TB, body string) string {
	p := filepath.Join(t.TempDir(), "appliance.json")
	mustWrite(t, p, []byte(body))
	return p
}

// pinnedSet lists every CID pinned in repo (recursive, direct, indirect),
// asked of the stock kubo CLI so the check does not trust our own code.
func pinnedSet(t testing.TB, repo string) map[string]bool {
	t.Helper()
	cmd := exec.Command(stockIPFS(t), "pin", "ls", "--type=all", "--quiet")
	cmd.Env = append(os.Environ(), "IPFS_PATH="+repo)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("stock ipfs pin ls on our repo: %v", err)
	}
	set := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		set[l] = true
	}
	return set
}

// TestAnchorSurvivesSIGKILL kills anchoring at random points, many times:
// the manifest is always valid JSON, every CID it records is pinned, and a
// last run completes the rest with no duplicate records.
func TestAnchorSurvivesSIGKILL(t *testing.T) {
	bin := anchorBinary(t)
	root := newTree(t)
	repo := initRepo(t)
	const files = 300
	for i := range files {
		randomFile(t, filepath.Join(root, tReleases, fmt.Sprintf("f%03d.zip", i)), 96<<10+int64(i))
	}
	runCLI(t, "--root", root, "event", "--event", "quarterly_release", "--version", "v1", "--hash", "h")
	cfg := writeConfig(t, `{"anchor":{"checkpoint_interval":"30ms"}}`)
	rng := mrand.New(mrand.NewPCG(1, uint64(time.Now().UnixNano())))
	kills := 0
	var progress []int
	for i := 0; i < 25 && kills < 12; i++ {
		cmd := exec.Command(bin, "--root", root, "--repo", repo, "--config", cfg, "anchor")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(10+rng.IntN(400)) * time.Millisecond)
		if cmd.Process.Signal(syscall.SIGKILL) == nil {
			kills++
		}
		err := cmd.Wait()
		m := readManifest(t, root) // fails the test on invalid JSON
		progress = append(progress, len(m.Records))
		pins := pinnedSet(t, repo)
		for _, r := range m.Records {
			if !pins[r.IPFSCID] {
				t.Fatalf("after kill %d: recorded %s (%s) is not pinned", kills, r.IPFSCID, r.FilePath)
			}
		}
		if err == nil {
			break // the run finished before the kill
		}
	}
	if kills == 0 {
		t.Fatal("no run was killed")
	}
	code, _, stderr := runCLI(t, "--root", root, "--repo", repo, "anchor")
	if code != 0 {
		t.Fatalf("final run: exit %d: %s", code, stderr)
	}
	m := readManifest(t, root)
	seen := map[string]int{}
	for _, r := range m.Records {
		seen[r.FilePath+"@"+r.FileHash]++
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("duplicate record %s (%d times)", k, n)
		}
	}
	if len(seen) != files+1 {
		t.Errorf("%d distinct records, want %d files + the log", len(seen), files)
	}
	pins := pinnedSet(t, repo)
	for _, r := range m.Records {
		if !pins[r.IPFSCID] {
			t.Errorf("%s not pinned", r.FilePath)
		}
	}
	t.Logf("%d kills; records after each: %v", kills, progress)
}

// heldRun is an anchoring run of the real binary that is busy adding a
// 1 TiB sparse release bundle (it cannot finish during a test) and holds
// the repo and manifest locks while it does.
type heldRun struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
}

func (h *heldRun) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stderr.String()
}

// startHeldRun starts `anchor` on root and returns once the run has logged
// that it is adding big.zip.
func startHeldRun(t *testing.T, root, repo string) *heldRun {
	t.Helper()
	h := &heldRun{cmd: exec.Command(anchorBinary(t), "--root", root, "--repo", repo, "--log-level", "debug", "anchor")}
	pipe, err := h.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.cmd.Process.Kill() })
	adding := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pipe)
		once := sync.Once{}
		for sc.Scan() {
			h.mu.Lock()
			h.stderr.WriteString(sc.Text() + "\n")
			h.mu.Unlock()
			if strings.Contains(sc.Text(), "adding file") && strings.Contains(sc.Text(), "big.zip") {
				once.Do(func() { close(adding) })
			}
		}
	}()
	select {
	case <-adding:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the run never started adding big.zip: %s", h)
	}
	return h
}

// sparseBundle puts a 1 TiB sparse big.zip in the releases and logs the
// quarterly event that selects it.
func sparseBundle(t *testing.T, root string) {
	t.Helper()
	p := filepath.Join(root, tReleases, "big.zip")
	mustMkdir(t, filepath.Dir(p))
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if code, _, stderr := runCLI(t, "--root", root, "event", "--event", "quarterly_release", "--version", "v1", "--hash", "h"); code != 0 {
		t.Fatalf("event: %s", stderr)
	}
}

// TestAnchorConcurrentRuns: while one run holds the repo and the manifest
// (deterministically: it is adding a 1 TiB file), a second run on the same
// repo and a run from another repo on the same tree are both refused with
// exit 3 and a "locked" message; afterwards one run records everything
// once.
func TestAnchorConcurrentRuns(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	sparseBundle(t, root)
	before, _ := os.ReadFile(filepath.Join(root, tManifest))
	held := startHeldRun(t, root, repo)

	code, _, stderr := runCLI(t, "--root", root, "--repo", repo, "anchor")
	if code != exitRepo || !strings.Contains(stderr, "lock") {
		t.Errorf("second run on the same repo: exit %d (want 3 with a locked message): %s", code, stderr)
	}
	other := initRepo(t)
	code, _, stderr = runCLI(t, "--root", root, "--repo", other, "anchor")
	if code != exitRepo || !strings.Contains(stderr, "manifest") || !strings.Contains(stderr, "locked") {
		t.Errorf("run from another repo on the same tree: exit %d (want 3 saying the manifest is locked): %s", code, stderr)
	}
	held.cmd.Process.Signal(os.Interrupt)
	held.cmd.Wait()
	if code := held.cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("held run: exit %d after SIGINT, want 130: %s", code, held)
	}
	if after, _ := os.ReadFile(filepath.Join(root, tManifest)); !bytes.Equal(before, after) {
		t.Fatal("the manifest changed while every run was refused or interrupted")
	}

	randomFile(t, filepath.Join(root, tReleases, "big.zip"), 1<<20)
	for i := range 2 {
		if code, _, stderr := runCLI(t, "--root", root, "--repo", repo, "anchor"); code != 0 {
			t.Fatalf("run %d after the lock was released: exit %d: %s", i, code, stderr)
		}
	}
	seen := map[string]bool{}
	for _, r := range readManifest(t, root).Records {
		if seen[r.FilePath] {
			t.Errorf("recorded twice: %s", r.FilePath)
		}
		seen[r.FilePath] = true
	}
	if !seen[tReleases+"/big.zip"] {
		t.Error("big.zip not recorded")
	}
}

func TestAnchorExitCodes(t *testing.T) {
	root := newTree(t)
	code, _, stderr := runCLI(t, "--root", root, "--repo", filepath.Join(t.TempDir(), "none"), "anchor")
	if code != exitRepo || !strings.Contains(stderr, "not initialised") || !strings.Contains(stderr, "ssid-anchor init") {
		t.Errorf("no repo: exit %d, stderr %s", code, stderr)
	}
	if code, _, _ := runCLI(t, "--root", root, "anchor", "--no-such-flag"); code != exitUsage {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	if code, _, stderr := runCLI(t, "--root", root, "anchor", "--cid-profile", "v7", "--dry-run"); code != exitUsage || !strings.Contains(stderr, "--cid-profile") {
		t.Errorf("bad profile: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, "--root", filepath.Join(root, "nope"), "anchor", "--dry-run"); code != exitUsage || !strings.Contains(stderr, "--root") {
		t.Errorf("missing root: exit %d: %s", code, stderr)
	}
	// A manifest that is not JSON is named and left alone.
	mustWrite(t, filepath.Join(root, tManifest), []byte("{ broken"))
	repo := initRepo(t)
	if code, _, stderr := runCLI(t, "--root", root, "--repo", repo, "anchor"); code != exitFailure || !strings.Contains(stderr, tManifest) {
		t.Errorf("corrupt manifest: exit %d: %s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(root, tManifest)); string(b) != "{ broken" {
		t.Error("a corrupt manifest was overwritten")
	}
}

// TestAnchorDryRunWritesNothing: --dry-run needs no repo and reports the
// CIDs a real run records.
func TestAnchorDryRunWritesNothing(t *testing.T) {
	root := newTree(t)
	before, _ := os.ReadFile(filepath.Join(root, tManifest))
	code, out, stderr := runCLI(t, "--json", "--root", root, "--repo", filepath.Join(t.TempDir(), "none"), "anchor", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var dry anchor.Result
	if err := json.Unmarshal([]byte(out), &dry); err != nil || !dry.DryRun || len(dry.Records) != 1 {
		t.Fatalf("dry run: %v %+v", err, dry)
	}
	after, _ := os.ReadFile(filepath.Join(root, tManifest))
	if !bytes.Equal(before, after) {
		t.Fatal("dry run changed the manifest")
	}
	repo := initRepo(t)
	runCLI(t, "--root", root, "--repo", repo, "anchor")
	m := readManifest(t, root)
	if m.Records[0].IPFSCID != dry.Records[0].IPFSCID || m.Records[0].FileHash != dry.Records[0].FileHash {
		t.Errorf("dry run said %s/%s, the real run recorded %s/%s", dry.Records[0].IPFSCID, dry.Records[0].FileHash, m.Records[0].IPFSCID, m.Records[0].FileHash)
	}
}

// TestAnchorInterrupted: SIGINT while a 1 TiB file is being added (the
// run is known to be inside the add: it logged so) exits 130 promptly,
// leaves the manifest as it was and releases the repo.
func TestAnchorInterrupted(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	sparseBundle(t, root)
	before, _ := os.ReadFile(filepath.Join(root, tManifest))
	held := startHeldRun(t, root, repo)
	start := time.Now()
	held.cmd.Process.Signal(os.Interrupt)
	held.cmd.Wait()
	took := time.Since(start)
	t.Logf("stopped %v after SIGINT", took)
	if code := held.cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("exit %d, want 130: %s", code, held)
	}
	if took > 10*time.Second {
		t.Errorf("took %v to stop after SIGINT", took)
	}
	after, _ := os.ReadFile(filepath.Join(root, tManifest))
	if !bytes.Equal(before, after) {
		t.Error("an interrupted run changed the manifest")
	}
	// The repo lock was released.
	n, err := node.Open(context.Background(), repo, node.OpenOptions{})
	if err != nil {
		t.Fatalf("repo after interrupt: %v", err)
	}
	n.Close()
}
