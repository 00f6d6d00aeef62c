package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/release"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
)

// specEntries are the bundle's entries in SPEC 2.7 order.
var specEntries = []string{"COMPLIANCE_REPORT.md", "SSID_Governance_Dashboard.md", "registry_events.log",
	"integrity_checksums.json", "dashboard_manifest.json", "branch_protection_rules.yaml",
	"OPERATIONS_GUIDE.md", "promotion_rules.yaml", "README.md"}

const (
	tOpsGuide       = "05_documentation/OPERATIONS_GUIDE.md"
	tReleaseMan     = "24_meta_orchestration/registry/manifests/quarterly_release_manifest_%s.json"
	tReleaseEvent   = "24_meta_orchestration/registry/events/release_%s.json"
	tReleaseZip     = tReleases + "/SSID_Quarterly_Release_%s.zip"
	tComplianceRepo = "05_documentation/reports/%s/COMPLIANCE_REPORT.md"
)

// bundleTree is newTree (real sample log and manifest) plus the release
// inputs of SPEC 2.7 for quarter q, from testdata/release.
func bundleTree(t testing.TB, q string) string {
	t.Helper()
	root := newTree(t)
	writeReleaseInputs(t, root, q)
	return root
}

// writeReleaseInputs writes the release inputs of quarter q into root.
func writeReleaseInputs(t testing.TB, root, q string) {
	t.Helper()
	src := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata/release", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	report := bytes.ReplaceAll(src("COMPLIANCE_REPORT.md"), []byte("{{QUARTER}}"), []byte(q))
	mustWrite(t, filepath.Join(root, fmt.Sprintf(tComplianceRepo, q)), report)
	for name, dst := range map[string]string{
		"SSID_Governance_Dashboard.md": "05_documentation/reports/dashboard/SSID_Governance_Dashboard.md",
		"integrity_checksums.json":     "24_meta_orchestration/registry/manifests/integrity_checksums.json",
		"dashboard_manifest.json":      "24_meta_orchestration/registry/manifests/dashboard_manifest.json",
		"branch_protection_rules.yaml": "07_governance_legal/branch_protection_rules.yaml",
		"OPERATIONS_GUIDE.md":          tOpsGuide,
		"promotion_rules.yaml":         "24_meta_orchestration/promotion_rules.yaml",
	} {
		mustWrite(t, filepath.Join(root, dst), src(name))
	}
	b, err := os.ReadFile("testdata/dashboard_data.csv")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, "05_documentation/reports/dashboard/dashboard_data.csv"), b)
}

// testGlobals are the options run() would build, with a fixed clock.
func testGlobals(root, repo string, now time.Time) (*globalOptions, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &globalOptions{
		Root: root, Repo: repo, stdout: &out, stderr: &errb,
		log: slog.New(slog.NewTextHandler(&errb, nil)), cfg: appconfig.Default(),
		now: func() time.Time { return now },
	}, &out, &errb
}

func sha256File(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// releaseEvents are the governance_release_published events of the log.
func releaseEvents(t testing.TB, root string) []tree.Event {
	t.Helper()
	var out []tree.Event
	if _, err := tree.ReadEventsFile(filepath.Join(root, tLog), func(e tree.Event) error {
		if e.Name() == release.EventName {
			out = append(out, e)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// bundleBin runs the built binary's bundle command under a umask and TZ.
func bundleBin(t *testing.T, root, quarter, umask, tz string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", `umask `+umask+` && exec "$0" "$@"`, anchorBinary(t),
		"--root", root, "--repo", filepath.Join(t.TempDir(), "unused"), "bundle", "--quarter", quarter)
	cmd.Env = append(os.Environ(), "TZ="+tz, "SOURCE_DATE_EPOCH=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bundle (umask %s, TZ %s): %v\n%s", umask, tz, err, out)
	}
}

// touchAll gives every file under root a random mtime (seed logged) and,
// when mode is not 0, that mode.
func touchAll(t *testing.T, root string, rng *mrand.Rand, mode os.FileMode) {
	t.Helper()
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		mt := time.Unix(rng.Int64N(2_000_000_000), 0)
		if err := os.Chtimes(p, mt, mt); err != nil {
			return err
		}
		if mode != 0 {
			return os.Chmod(p, mode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBundleReproducible: the same quarter built twice, in two trees whose
// files have different mtimes and modes, under different umasks and time
// zones, gives byte-identical zips; rebuilding in the first tree after
// touching every file writes nothing and appends no event.
func TestBundleReproducible(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("mtime seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 1))
	const q = "2026-Q3"
	a, b := bundleTree(t, q), bundleTree(t, q)
	touchAll(t, b, rng, 0o600)
	bundleBin(t, a, q, "022", "UTC")
	bundleBin(t, b, q, "077", "Pacific/Kiritimati")
	za, zb := readFile(t, filepath.Join(a, fmt.Sprintf(tReleaseZip, q))), readFile(t, filepath.Join(b, fmt.Sprintf(tReleaseZip, q)))
	if !bytes.Equal(za, zb) {
		t.Fatalf("zips differ: %d bytes (umask 022, UTC) vs %d bytes (umask 077, UTC+14, other mtimes and modes)", len(za), len(zb))
	}

	logBefore := readFile(t, filepath.Join(a, tLog))
	touchAll(t, a, rng, 0)
	// touchAll gave every file a random mtime; a file written again would
	// carry the current time instead.
	written := []string{fmt.Sprintf(tReleaseZip, q), fmt.Sprintf(tReleaseMan, q), fmt.Sprintf(tReleaseEvent, q)}
	mtimes := map[string]time.Time{}
	for _, p := range written {
		st, err := os.Stat(filepath.Join(a, p))
		if err != nil {
			t.Fatal(err)
		}
		mtimes[p] = st.ModTime()
	}
	bundleBin(t, a, q, "002", "America/Adak")
	if again := readFile(t, filepath.Join(a, fmt.Sprintf(tReleaseZip, q))); !bytes.Equal(again, za) {
		t.Fatal("a rebuild in the same tree after touching every file changed the zip")
	}
	if !bytes.Equal(readFile(t, filepath.Join(a, tLog)), logBefore) {
		t.Fatal("a rebuild with unchanged inputs appended to the registry log")
	}
	for _, p := range written {
		if st, err := os.Stat(filepath.Join(a, p)); err != nil || !st.ModTime().Equal(mtimes[p]) {
			t.Errorf("%s was rewritten by a build with unchanged inputs", p)
		}
	}
	if n := len(releaseEvents(t, a)); n != 1 {
		t.Fatalf("%d release events after two builds with the same inputs, want 1", n)
	}
}

// TestBundleEntries: `unzip -l` (or archive/zip when unzip is missing)
// lists the nine entries in SPEC order; each entry is deflated, dated the
// quarter's last second (MS-DOS: 23:59:58), mode 0644, without extra
// fields or data descriptors, and holds the source file's bytes.
func TestBundleEntries(t *testing.T) {
	const q = "2026-Q2"
	root := bundleTree(t, q)
	g, _, errb := testGlobals(root, t.TempDir(), time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC))
	t.Setenv("SOURCE_DATE_EPOCH", "")
	if err := runBundle(context.Background(), bundleOptions{Quarter: q}, g); err != nil {
		t.Fatalf("bundle: %v\n%s", err, errb)
	}
	zpath := filepath.Join(root, fmt.Sprintf(tReleaseZip, q))
	if unzip, err := exec.LookPath("unzip"); err == nil {
		out, err := exec.Command(unzip, "-l", zpath).Output()
		if err != nil {
			t.Fatalf("unzip -l: %v", err)
		}
		var names []string
		for _, line := range strings.Split(string(out), "\n") {
			// "  Length  Date  Time  Name" rows; the date's format varies
			// between unzip builds, the time is always HH:MM.
			if f := strings.Fields(line); len(f) == 4 && f[2] == "23:59" && (strings.Contains(f[1], "2026") || strings.Contains(f[1], "26")) {
				names = append(names, f[3])
			}
		}
		if strings.Join(names, " ") != strings.Join(specEntries, " ") {
			t.Fatalf("unzip -l lists %v, want %v\n%s", names, specEntries, out)
		}
	} else {
		t.Log("unzip not installed; listing with archive/zip only")
	}
	zr, err := zip.OpenReader(zpath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	srcs := release.Inputs(tree.DefaultPaths(), release.Quarter{Year: 2026, N: 2})
	if len(zr.File) != len(specEntries) {
		t.Fatalf("%d entries, want %d", len(zr.File), len(specEntries))
	}
	logSrc := readFile(t, filepath.Join(root, tLog))
	for i, f := range zr.File {
		if f.Name != specEntries[i] || srcs[i].Entry != f.Name {
			t.Errorf("entry %d is %q, want %q", i, f.Name, specEntries[i])
		}
		if len(f.Extra) != 0 || f.Flags&0x8 != 0 || f.Method != zip.Deflate || f.Mode() != 0o644 {
			t.Errorf("%s: extra %d bytes, flags %#x, method %d, mode %v", f.Name, len(f.Extra), f.Flags, f.Method, f.Mode())
		}
		if want := time.Date(2026, 6, 30, 23, 59, 58, 0, time.UTC); !f.Modified.Equal(want) {
			t.Errorf("%s: modified %v, want %v", f.Name, f.Modified, want)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		want := readFile(t, filepath.Join(root, srcs[i].Path))
		if f.Name == "registry_events.log" {
			// The log gained the release event after it was zipped; the
			// bundle holds everything before it.
			want = logSrc[:bytes.Index(logSrc, []byte("{\n  \"timestamp\": \"2026-08-01T00:00:00Z\",\n  \"event\": \""+release.EventName))]
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: content differs from %s", f.Name, srcs[i].Path)
		}
	}
}

// TestBundleHashesAgree: the release manifest's hash and proof_anchor, the
// logged event's bundle_hash and the event file's are the zip's SHA-256;
// the manifest and event file keep the templates' key order.
func TestBundleHashesAgree(t *testing.T) {
	const q = "2026-Q1"
	root := bundleTree(t, q)
	code, out, errb := runCLI(t, "--root", root, "--repo", t.TempDir(), "--json", "bundle", "--quarter", q)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb)
	}
	var res release.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	sum := sha256File(t, filepath.Join(root, fmt.Sprintf(tReleaseZip, q)))
	manBytes := readFile(t, filepath.Join(root, fmt.Sprintf(tReleaseMan, q)))
	var man release.Manifest
	if err := json.Unmarshal(manBytes, &man); err != nil {
		t.Fatal(err)
	}
	evs := releaseEvents(t, root)
	if len(evs) != 1 {
		t.Fatalf("%d release events, want 1", len(evs))
	}
	var ef release.EventFile
	if err := json.Unmarshal(readFile(t, filepath.Join(root, fmt.Sprintf(tReleaseEvent, q))), &ef); err != nil {
		t.Fatal(err)
	}
	for what, v := range map[string]string{"manifest hash": man.Hash, "manifest proof_anchor": man.ProofAnchor,
		"log event bundle_hash": evs[0].Field("bundle_hash"), "event file bundle_hash": ef.BundleHash,
		"event file proof_anchors.bundle_hash": ef.ProofAnchors.BundleHash, "--json hash": res.Hash} {
		if v != sum {
			t.Errorf("%s = %q, want the zip's SHA-256 %s", what, v, sum)
		}
	}
	if ef.ProofAnchors.EventProofAnchor != evs[0].ProofAnchor || res.EventProofAnchor != evs[0].ProofAnchor {
		t.Errorf("event proof anchor: file %s, --json %s, log %s", ef.ProofAnchors.EventProofAnchor, res.EventProofAnchor, evs[0].ProofAnchor)
	}
	if man.Version != "v4.3-Q1-2026" || man.Quarter != q || man.ComplianceScore != "97/100" || man.FileCount != 9 ||
		man.Status != "READY_FOR_PUBLIC_RELEASE" || man.Root24Lock != "PASS" || man.Artifact != fmt.Sprintf(tReleaseZip, q) ||
		man.BundleSizeBytes != int64(len(readFile(t, filepath.Join(root, fmt.Sprintf(tReleaseZip, q))))) {
		t.Errorf("manifest fields: %+v", man)
	}
	if e := evs[0]; e.Field("quarter") != q || e.Field("version") != man.Version || e.Field("root_24_lock") != "active" || e.Field("compliance_score") != "97/100" {
		t.Errorf("log event: %s", e.Raw)
	}
	// Key order: the manifest's keys are the template's, in its order, up
	// to governance_system, then the template's last key, metadata (which
	// build wrote it); the event file's are the template's less the
	// release_metadata it cannot know.
	tmplMan := topKeys(t, readFile(t, "testdata/release/quarterly_release_manifest_TEMPLATE.json"))
	gi := indexOf(tmplMan, "governance_system")
	wantMan := append(slices.Clone(tmplMan[:gi+1]), tmplMan[len(tmplMan)-1])
	if got := topKeys(t, manBytes); strings.Join(got, ",") != strings.Join(wantMan, ",") {
		t.Errorf("manifest keys %v, want %v", got, wantMan)
	}
	tmplEv := topKeys(t, readFile(t, "testdata/release/release_TEMPLATE.json"))
	if got := topKeys(t, readFile(t, filepath.Join(root, fmt.Sprintf(tReleaseEvent, q)))); strings.Join(got, ",") != strings.Join(tmplEv[:indexOf(tmplEv, "release_metadata")], ",") {
		t.Errorf("event file keys %v, want %v", got, tmplEv)
	}
	// The classic 8 keys first, then quarter and bundle_hash.
	var keys []string
	for _, k := range topKeys(t, evs[0].Raw) {
		keys = append(keys, k)
	}
	if want := "timestamp,event,version,commit_hash,blueprint,root_24_lock,compliance_score,emitted_by,quarter,bundle_hash"; strings.Join(keys, ",") != want {
		t.Errorf("log event keys %v, want %s", keys, want)
	}
}

func topKeys(t testing.TB, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestBundleDefaultQuarterNewYear: at 09:00 UTC on January 1 (the schedule),
// the default quarter is the previous year's Q4, whose report exists; the
// old script took the new Q1 and failed for want of its report.
func TestBundleDefaultQuarterNewYear(t *testing.T) {
	root := bundleTree(t, "2026-Q4")
	t.Setenv("SOURCE_DATE_EPOCH", "")
	g, _, errb := testGlobals(root, t.TempDir(), time.Date(2027, 1, 1, 9, 0, 0, 0, time.UTC))
	if err := runBundle(context.Background(), bundleOptions{}, g); err != nil {
		t.Fatalf("bundle: %v\n%s", err, errb)
	}
	zr, err := zip.OpenReader(filepath.Join(root, fmt.Sprintf(tReleaseZip, "2026-Q4")))
	if err != nil {
		t.Fatalf("no 2026-Q4 bundle: %v\n%s", err, errb)
	}
	defer zr.Close()
	if want := time.Date(2026, 12, 31, 23, 59, 58, 0, time.UTC); !zr.File[0].Modified.Equal(want) {
		t.Errorf("entries dated %v, want %v", zr.File[0].Modified, want)
	}
	if _, err := os.Stat(filepath.Join(root, fmt.Sprintf(tReleaseZip, "2027-Q1"))); err == nil {
		t.Error("a 2027-Q1 bundle was built")
	}
	if evs := releaseEvents(t, root); len(evs) != 1 || evs[0].Field("quarter") != "2026-Q4" || evs[0].Field("version") != "v4.3-Q4-2026" {
		t.Errorf("release events: %v", evs)
	}
}

// TestBundleSourceDateEpoch: SOURCE_DATE_EPOCH dates every entry.
func TestBundleSourceDateEpoch(t *testing.T) {
	root := bundleTree(t, "2026-Q1")
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600") // 2026-01-01T00:00:00Z
	if code, _, errb := runCLI(t, "--root", root, "--repo", t.TempDir(), "bundle", "--quarter", "2026-Q1"); code != 0 {
		t.Fatalf("exit %d: %s", code, errb)
	}
	zr, err := zip.OpenReader(filepath.Join(root, fmt.Sprintf(tReleaseZip, "2026-Q1")))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if !f.Modified.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("%s dated %v", f.Name, f.Modified)
		}
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if code, _, errb := runCLI(t, "--root", root, "--repo", t.TempDir(), "bundle", "--quarter", "2026-Q1"); code != 2 || !strings.Contains(errb, "SOURCE_DATE_EPOCH") {
		t.Fatalf("bad SOURCE_DATE_EPOCH: exit %d: %s", code, errb)
	}
}

// TestBundleMissingRequired: a missing required file is exit 1 naming it;
// no zip (not even a partial one), no manifest, no event.
func TestBundleMissingRequired(t *testing.T) {
	const q = "2026-Q3"
	root := bundleTree(t, q)
	if err := os.Remove(filepath.Join(root, tOpsGuide)); err != nil {
		t.Fatal(err)
	}
	logBefore := readFile(t, filepath.Join(root, tLog))
	code, _, errb := runCLI(t, "--root", root, "--repo", t.TempDir(), "bundle", "--quarter", q)
	if code != 1 || !strings.Contains(errb, "OPERATIONS_GUIDE.md (from "+tOpsGuide+")") {
		t.Fatalf("exit %d, stderr:\n%s", code, errb)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, tReleases)); len(entries) != 0 {
		t.Errorf("files left in %s: %v", tReleases, entries)
	}
	for _, p := range []string{fmt.Sprintf(tReleaseMan, q), fmt.Sprintf(tReleaseEvent, q)} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s was written", p)
		}
	}
	if !bytes.Equal(readFile(t, filepath.Join(root, tLog)), logBefore) {
		t.Error("the registry log changed")
	}
	// The optional integrity_checksums.json may be missing: 8 entries.
	mustWrite(t, filepath.Join(root, tOpsGuide), []byte("# guide\n"))
	os.Remove(filepath.Join(root, "24_meta_orchestration/registry/manifests/integrity_checksums.json"))
	if code, _, errb := runCLI(t, "--root", root, "--repo", t.TempDir(), "bundle", "--quarter", q); code != 0 || !strings.Contains(errb, "optional integrity_checksums.json not found") {
		t.Fatalf("without the optional file: exit %d\n%s", code, errb)
	}
	zr, err := zip.OpenReader(filepath.Join(root, fmt.Sprintf(tReleaseZip, q)))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if len(zr.File) != 8 || zr.File[3].Name != "dashboard_manifest.json" {
		t.Errorf("%d entries, 4th %s", len(zr.File), zr.File[3].Name)
	}
}

// TestBundleChangedInputs: building again after an input changed writes a
// new zip and manifest and appends a second release event with the new
// hash; the bundled log is still the log before the quarter's first release
// event, and a further build with the same inputs appends nothing.
func TestBundleChangedInputs(t *testing.T) {
	const q = "2026-Q3"
	root := bundleTree(t, q)
	build := func() release.Result {
		t.Helper()
		code, out, errb := runCLI(t, "--root", root, "--repo", t.TempDir(), "--json", "bundle", "--quarter", q)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb)
		}
		var r release.Result
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	bundledLog := func() []byte {
		zr, err := zip.OpenReader(filepath.Join(root, fmt.Sprintf(tReleaseZip, q)))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		rc, err := zr.File[2].Open()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return b
	}
	first := build()
	log1 := bundledLog()
	if !first.EventAppended || len(first.Written) != 4 {
		t.Fatalf("first build: %+v", first)
	}
	same := build()
	if same.EventAppended || len(same.Written) != 0 || same.Hash != first.Hash {
		t.Fatalf("unchanged rebuild: %+v", same)
	}
	report := filepath.Join(root, fmt.Sprintf(tComplianceRepo, q))
	mustWrite(t, report, bytes.Replace(readFile(t, report), []byte("97/100"), []byte("98/100"), 1))
	changed := build()
	if changed.Hash == first.Hash || changed.Replaced != first.Hash || !changed.EventAppended || changed.ComplianceScore != "98/100" {
		t.Fatalf("changed rebuild: %+v", changed)
	}
	if !bytes.Equal(bundledLog(), log1) {
		t.Error("the bundled log changed: it must end before the quarter's first release event")
	}
	evs := releaseEvents(t, root)
	if len(evs) != 2 || evs[0].Field("bundle_hash") != first.Hash || evs[1].Field("bundle_hash") != changed.Hash {
		t.Fatalf("release events: %d", len(evs))
	}
	if again := build(); again.EventAppended || len(again.Written) != 0 || again.EventProofAnchor != evs[1].ProofAnchor {
		t.Fatalf("rebuild after the change: %+v", again)
	}
}

// TestBundleRefusesFIFO: a FIFO in place of an input is refused at once,
// not read (which would block), and nothing is written.
func TestBundleRefusesFIFO(t *testing.T) {
	const q = "2026-Q3"
	root := bundleTree(t, q)
	readme := filepath.Join(root, "README.md")
	if err := os.Remove(readme); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(readme, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var code int
	var errb string
	go func() {
		code, _, errb = runCLI(t, "--root", root, "--repo", t.TempDir(), "bundle", "--quarter", q)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		// Unblock the reader so the test can end, then fail.
		if f, err := os.OpenFile(readme, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		<-done
		t.Fatal("bundle blocked on a FIFO")
	}
	if code != 1 || !strings.Contains(errb, "README.md is a named pipe") {
		t.Fatalf("exit %d: %s", code, errb)
	}
	if _, err := os.Stat(filepath.Join(root, fmt.Sprintf(tReleaseZip, q))); err == nil {
		t.Error("a zip was written")
	}
}

// TestBundleLocked: while another process builds a release in the tree, a
// second build is refused at once and writes nothing.
func TestBundleLocked(t *testing.T) {
	const q = "2026-Q3"
	root := bundleTree(t, q)
	unlock, err := tree.LockDir(filepath.Join(root, tReleases))
	if err != nil {
		t.Fatal(err)
	}
	logBefore := readFile(t, filepath.Join(root, tLog))
	code, _, errb := runCLI(t, "--root", root, "--repo", t.TempDir(), "bundle", "--quarter", q)
	unlock()
	if code != 1 || !strings.Contains(errb, "another ssid-anchor process is building a release") {
		t.Fatalf("exit %d: %s", code, errb)
	}
	if _, err := os.Stat(filepath.Join(root, fmt.Sprintf(tReleaseZip, q))); err == nil || !bytes.Equal(readFile(t, filepath.Join(root, tLog)), logBefore) {
		t.Error("a locked build wrote something")
	}
	if code, _, errb := runCLI(t, "--root", root, "--repo", t.TempDir(), "bundle", "--quarter", q); code != 0 {
		t.Fatalf("after unlock: exit %d: %s", code, errb)
	}
}
