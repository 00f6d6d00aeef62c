package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/console"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
	"github.com/ssid/ssid-anchor/node"
)

// consoleNow is after every row of the real dashboard CSV, so all count.
var consoleNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// consoleFixture is a governance tree of the real samples (registry log,
// manifest, dashboard CSV, telemetry config) plus a release bundle,
// anchored twice by the embedded node, so there is file history and a
// manifest chain of three. Telemetry notifies a loopback webhook.
type consoleFixture struct {
	root, repo    string
	g             *globalOptions
	first, second anchor.Result
	hook          *hook
	paths         tree.Paths
}

func newConsoleFixture(t *testing.T) *consoleFixture {
	t.Helper()
	f := &consoleFixture{root: newTree(t), repo: filepath.Join(t.TempDir(), "repo"), paths: tree.DefaultPaths(), hook: newHook(t, http.StatusOK)}
	b, err := os.ReadFile("../../telemetry/testdata/telemetry_config.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	withWebhook(f.hook.URL + "/hooks/secret-path-token")(cfg)
	b, _ = json.MarshalIndent(cfg, "", "  ")
	mustWrite(t, filepath.Join(f.root, f.paths.TelemetryConfig), b)
	csvb, err := os.ReadFile("testdata/dashboard_data.csv")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(f.root, f.paths.DashboardCSV[0]), csvb)
	mustWrite(t, filepath.Join(f.root, f.paths.DashboardMarkdown), []byte("# SSID Governance Dashboard\n\n**Overall Compliance Score:** 100/100\n"))
	seed := uint64(time.Now().UnixNano())
	t.Logf("release bundle seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 11))
	zip := make([]byte, 700<<10)
	for i := range zip {
		zip[i] = byte(r.Uint32())
	}
	mustWrite(t, filepath.Join(f.root, tReleases, "SSID_Quarterly_Release_2026-Q1.zip"), zip)

	var out, errb bytes.Buffer
	f.g = &globalOptions{
		Root: f.root, Repo: f.repo, JSON: true, stdout: &out, stderr: &errb,
		log: slog.New(slog.DiscardHandler), cfg: appconfig.Default(), now: func() time.Time { return consoleNow },
	}
	ctx := context.Background()
	if err := runInit(ctx, initOptions{Profile: node.ProfileAirGapped}, f.g); err != nil {
		t.Fatal(err)
	}
	anchorRun := func(res *anchor.Result) {
		t.Helper()
		out.Reset()
		if err := runAnchor(ctx, anchorOptions{}, f.g); err != nil {
			t.Fatalf("anchor: %v\n%s", err, errb.String())
		}
		if err := json.Unmarshal(out.Bytes(), res); err != nil {
			t.Fatalf("anchor --json: %v\n%s", err, out.String())
		}
	}
	if code, _, e := runCLI(t, "--root", f.root, "event", "--event", "quarterly_release", "--version", "2026-Q1", "--hash", "h"); code != 0 {
		t.Fatalf("event: %s", e)
	}
	anchorRun(&f.first)
	// A new dashboard row and a dashboard event: the CSV and the log get
	// second versions, and the manifest chain grows.
	csAppend(t, filepath.Join(f.root, f.paths.DashboardCSV[0]), "2026-Q4,2026-11-30,100,0,12,pending,true,PASS\n")
	if code, _, e := runCLI(t, "--root", f.root, "event", "--event", "governance_dashboard_update", "--version", "v4.3", "--hash", "h2"); code != 0 {
		t.Fatalf("event: %s", e)
	}
	anchorRun(&f.second)
	if len(f.first.Records) < 3 || len(f.second.Records) < 2 {
		t.Fatalf("anchoring recorded %d then %d files; the fixture needs the log, CSV, markdown and bundle", len(f.first.Records), len(f.second.Records))
	}
	f.g.JSON = false
	return f
}

func csAppend(t *testing.T, path, s string) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
}

// source opens the node the way every command does and builds the
// console's source on it.
func (f *consoleFixture) source(t *testing.T) (*consoleSource, *node.Node) {
	t.Helper()
	n, release, err := f.g.openNode(context.Background(), node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return newConsoleSource(f.g, n, consoleNow.Add(-90*time.Minute)), n
}

// csvRows reads the tree's dashboard CSV without the telemetry package.
func (f *consoleFixture) csvRows(t *testing.T) [][]string {
	t.Helper()
	fh, err := os.Open(filepath.Join(f.root, f.paths.DashboardCSV[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	rows, err := csv.NewReader(fh).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows[1:]
}

func csRender(t *testing.T, src console.Source, target string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	console.New(src, console.Options{Now: func() time.Time { return consoleNow }}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8089"+target, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s = %d: %s", target, rec.Code, rec.Body.String())
	}
	return rec.Body.String()
}

// TestConsoleSourceReadsTheBox: the snapshot is what the files and the node
// say: the manifest's records in order, the chain the anchoring runs
// reported, the CSV's rows, the node's identity, and a verification run on
// the node that catches a changed file.
func TestConsoleSourceReadsTheBox(t *testing.T) {
	f := newConsoleFixture(t)
	src, n := f.source(t)
	ctx := context.Background()
	snap, err := src.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	man := readManifest(t, f.root)
	if len(snap.Records) != len(man.Records) {
		t.Fatalf("%d records, the manifest has %d", len(snap.Records), len(man.Records))
	}
	for i, r := range man.Records {
		if got := snap.Records[i]; got.FilePath != r.FilePath || got.IPFSCID != r.IPFSCID || got.FileHash != r.FileHash {
			t.Errorf("record %d: %s %s, manifest %s %s", i, got.FilePath, got.IPFSCID, r.FilePath, r.IPFSCID)
		}
	}
	wantChain := []string{f.second.ManifestCID, f.second.PreviousCID, f.first.PreviousCID}
	if f.second.PreviousCID != f.first.ManifestCID {
		t.Fatalf("second run's previous %s is not the first run's manifest %s", f.second.PreviousCID, f.first.ManifestCID)
	}
	if len(snap.Chain) != 3 {
		t.Fatalf("chain %+v, want 3 links %v (%s)", snap.Chain, wantChain, snap.ChainNote)
	}
	for i, l := range snap.Chain {
		if l.CID != wantChain[i] {
			t.Errorf("chain[%d] = %s, want %s", i, l.CID, wantChain[i])
		}
	}
	if snap.Chain[0].Records != len(man.Records) || snap.Chain[2].Records != 0 || snap.Chain[0].LastUpdated != consoleNow.Format(time.RFC3339) {
		t.Errorf("chain details %+v", snap.Chain)
	}
	if snap.Node.PeerID != n.PeerID() || snap.Node.Profile != node.ProfileAirGapped || snap.Node.Root24Lock != "active" {
		t.Errorf("node %+v", snap.Node)
	}

	tel := snap.Telemetry
	rows := f.csvRows(t)
	if !tel.Enabled || tel.Min != 95 || tel.Critical != 90 || tel.CSVFile != f.paths.DashboardCSV[0] || tel.Problem != "" {
		t.Fatalf("telemetry %+v", tel)
	}
	if len(tel.Points) != len(rows) {
		t.Fatalf("%d points, the CSV has %d rows", len(tel.Points), len(rows))
	}
	for i, row := range rows {
		score, _ := strconv.ParseFloat(row[2], 64)
		if p := tel.Points[i]; p.Label != row[1] || p.Score != score || p.Line != i+2 {
			t.Errorf("point %d = %+v, CSV row %v", i, p, row)
		}
	}
	if len(tel.Channels) != 1 || tel.Channels[0].Name != "webhook" || !tel.Channels[0].LastDelivery.IsZero() {
		t.Errorf("channels %+v, want the webhook, never delivered", tel.Channels)
	}

	if snap.Verify != nil {
		t.Fatal("a verification is shown before any ran")
	}
	if err := src.VerifyNow(ctx); err != nil {
		t.Fatal(err)
	}
	snap, _ = src.Snapshot(ctx)
	if v := snap.Verify; v == nil || v.Result == nil || !v.Result.OK || v.Result.Passed != len(man.Records) || !v.At.Equal(consoleNow) {
		t.Fatalf("verify after anchoring: %+v", snap.Verify)
	}
	page := csRender(t, src, "/")
	if !strings.Contains(page, fmt.Sprintf("%d passed, 0 failed", len(man.Records))) {
		t.Error("page does not show the passed verification")
	}

	// Change an anchored file: the next verification fails that record
	// and the page says so on its row.
	md := f.paths.DashboardMarkdown
	mustWrite(t, filepath.Join(f.root, md), []byte("# tampered\n"))
	if err := src.VerifyNow(ctx); err != nil {
		t.Fatal(err)
	}
	snap, _ = src.Snapshot(ctx)
	if snap.Verify.Result.OK || snap.Verify.Result.Failed != 1 {
		t.Fatalf("verify after tampering: %d failed, ok=%v", snap.Verify.Result.Failed, snap.Verify.Result.OK)
	}
	page = csRender(t, src, "/?q="+md)
	if !strings.Contains(page, `<span class="badge bad" title="`) || !strings.Contains(page, md) {
		t.Errorf("the tampered file's row does not show a failed verification")
	}
	// No remote pinning configured: its empty state, no pins invented.
	if len(snap.RemotePins) != 0 || !strings.Contains(page, "No remote pinning service is configured.") {
		t.Error("remote pins shown without a configured service")
	}
}

// TestConsoleAlertAfterBadRow: a bad row added to the CSV and one telemetry
// check later, the page shows the critical alert and the webhook's
// delivery, and never the webhook's URL or secret.
func TestConsoleAlertAfterBadRow(t *testing.T) {
	f := newConsoleFixture(t)
	src, _ := f.source(t)
	page := csRender(t, src, "/")
	if !strings.Contains(page, "No alert is firing.") {
		t.Fatal("an alert fires before the bad row")
	}
	csAppend(t, filepath.Join(f.root, f.paths.DashboardCSV[0]), "2026-Q4,2026-12-01,80,2,3,pending,false,FAIL\n")
	if err := runTelemetry(context.Background(), telemetryOptions{}, f.g); err != nil {
		t.Fatalf("telemetry check: %v", err)
	}
	if len(f.hook.received()) == 0 {
		t.Fatal("the webhook received nothing")
	}
	page = csRender(t, src, "/")
	for _, want := range []string{
		`<li class="alert bad" role="alert"><span class="badge bad">critical</span> <strong>compliance_score</strong> since <time datetime="2026-12-01T12:00:00Z">`,
		`<th scope="row">webhook</th><td><time datetime="2026-12-01T12:00:00Z">`,
		`<span class="score bad">80</span>`,
		`data-date="2026-12-01" data-score="80"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, secret := range []string{f.hook.URL, "secret-path-token", "hmac-key-do-not-print"} {
		if strings.Contains(page, secret) {
			t.Errorf("page shows the secret %q", secret)
		}
	}
}

func csArtifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SSID_TEST_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// latestCIDs is the latest CID of each file in the manifest.
func csLatestCIDs(man *anchor.Manifest) map[string]string {
	out := map[string]string{}
	for _, r := range man.Records {
		out[r.FilePath] = r.IPFSCID
	}
	return out
}

func csReadAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestConsoleSourceFreshBox: a box that has anchored nothing, with
// telemetry switched off and no remote service, shows those empty states
// from its real files, and a broken CSV is named, not hidden.
func TestConsoleSourceFreshBox(t *testing.T) {
	root := newTree(t)
	p := tree.DefaultPaths()
	if err := os.Remove(filepath.Join(root, p.Manifest)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../telemetry/testdata/telemetry_config.json")
	if err != nil {
		t.Fatal(err)
	}
	off := bytes.Replace(b, []byte(`"enabled": true`), []byte(`"enabled": false`), 1)
	if bytes.Equal(off, b) {
		t.Fatal("the sample config has no top-level \"enabled\": true to switch off")
	}
	mustWrite(t, filepath.Join(root, p.TelemetryConfig), off)
	repo := initRepo(t)
	g := &globalOptions{Root: root, Repo: repo, stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.DiscardHandler),
		cfg: appconfig.Default(), now: func() time.Time { return consoleNow }}
	n, release, err := g.openNode(context.Background(), node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	h, _ := consoleHandler(g, n, consoleNow)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8089/", nil))
	page := rec.Body.String()
	for _, want := range []string{"No anchors yet.", "No manifest written yet.", "Telemetry is disabled.", "No remote pinning service is configured.", n.PeerID()[:20]} {
		if !strings.Contains(page, want) {
			t.Errorf("fresh box page lacks %q", want)
		}
	}

	// Telemetry on, and a CSV row whose score is not a number.
	mustWrite(t, filepath.Join(root, p.TelemetryConfig), b)
	mustWrite(t, filepath.Join(root, p.DashboardCSV[1]), []byte("quarter,date,compliance_score,violations\n2026-Q1,2026-03-31,high,0\n"))
	src := newConsoleSource(g, n, consoleNow)
	snap, err := src.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := p.DashboardCSV[1] + ":2:3:"; !strings.HasPrefix(snap.Telemetry.Problem, want) || snap.Telemetry.CSVFile != p.DashboardCSV[1] {
		t.Errorf("CSV problem %q from %s, want it to start with %s", snap.Telemetry.Problem, snap.Telemetry.CSVFile, want)
	}
}

// TestConsoleVerifyKeptAcrossRestart: a verification run through the
// console is kept in the repo (atomically, in <repo>/console/
// last_verify.json) and shown again, summary and rows, by the console of
// the next daemon on the same repo; a failed one too; a damaged file is
// named on the page and replaced by the next verification.
func TestConsoleVerifyKeptAcrossRestart(t *testing.T) {
	f := newConsoleFixture(t)
	man := readManifest(t, f.root)
	ctx := context.Background()
	src, n := f.source(t)
	if err := src.VerifyNow(ctx); err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(f.repo, "console", "last_verify.json")
	fi, err := os.Stat(kept)
	if err != nil {
		t.Fatalf("the verification was not kept: %v", err)
	}
	t.Logf("%s: %d bytes for %d records", kept, fi.Size(), len(man.Records))

	// The next daemon's console on the same repo.
	restarted := newConsoleSource(f.g, n, consoleNow)
	snap, err := restarted.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v := snap.Verify; v == nil || v.Result == nil || !v.Result.OK || v.Result.Passed != len(man.Records) || !v.At.Equal(consoleNow) || snap.VerifyProblem != "" {
		t.Fatalf("after a restart the console shows verification %+v (%s)", snap.Verify, snap.VerifyProblem)
	}
	page := csRender(t, restarted, "/")
	rows := csRows(page)
	if len(rows) != len(csLatestCIDs(man)) {
		t.Fatalf("%d rows, the manifest has %d files", len(rows), len(csLatestCIDs(man)))
	}
	for _, r := range rows {
		if !strings.Contains(r, `<td data-label="Verify"><span class="badge ok">ok</span></td>`) {
			t.Errorf("a row shows no verdict after the restart: %s", r)
		}
	}
	if !strings.Contains(page, fmt.Sprintf("%d passed, 0 failed", len(man.Records))) {
		t.Error("the summary of the kept verification is not shown")
	}

	// A failed verification is kept with its reason.
	md := f.paths.DashboardMarkdown
	mustWrite(t, filepath.Join(f.root, md), []byte("# tampered\n"))
	if err := restarted.VerifyNow(ctx); err != nil {
		t.Fatal(err)
	}
	again := newConsoleSource(f.g, n, consoleNow)
	page = csRender(t, again, "/?q="+md)
	if rows := csRows(page); len(rows) != 1 || !strings.Contains(rows[0], `<span class="badge bad" title="file: `) {
		t.Errorf("the tampered file's row after a restart: %v", rows)
	}
	if !strings.Contains(page, fmt.Sprintf("%d passed, 1 failed", len(man.Records)-1)) || !strings.Contains(page, "<li><code>"+md+"</code>: file: ") {
		t.Error("the kept failure is not shown")
	}

	// A damaged file: named on the page, no verification invented, and
	// the next verification replaces it.
	mustWrite(t, kept, []byte(`{"format": 1, "at": "2026-12-01T12:00:00Z", "result": {"verdicts": "+`))
	damaged := newConsoleSource(f.g, n, consoleNow)
	page = csRender(t, damaged, "/")
	if !strings.Contains(page, "The last verification kept in "+kept+" cannot be read") || !strings.Contains(page, "Not verified on this box yet.") {
		t.Errorf("a damaged kept verification is not named: %s", csSection(page, "verify"))
	}
	if err := damaged.VerifyNow(ctx); err != nil {
		t.Fatal(err)
	}
	if run, err := os.Open(kept); err != nil {
		t.Fatal(err)
	} else {
		defer run.Close()
		if _, err := console.LoadVerifyRun(run); err != nil {
			t.Errorf("the next verification did not replace the damaged file: %v", err)
		}
	}
}

var csRowRE = regexp.MustCompile(`(?s)<tr>\s*<th scope="row" class="path">.*?</tr>`)

func csRows(page string) []string { return csRowRE.FindAllString(page, -1) }

// csSection is the page's section with that id.
func csSection(page, id string) string {
	i := strings.Index(page, `<section id="`+id+`"`)
	if i < 0 {
		return ""
	}
	j := strings.Index(page[i:], "</section>")
	return page[i : i+j]
}

// TestConsoleWebhookLastDelivery: a registry event notice delivered to a
// loopback webhook (a real HTTP delivery, no alert involved) shows as the
// webhook's last delivery. The notice leaves the telemetry state once
// delivered, so the console reads the channel's own record
// (channels.webhook.last_sent), not the alerts'.
func TestConsoleWebhookLastDelivery(t *testing.T) {
	f := newConsoleFixture(t)
	src, _ := f.source(t)
	ctx := context.Background()
	if err := runTelemetry(ctx, telemetryOptions{}, f.g); err != nil {
		t.Fatal(err)
	}
	if got := len(f.hook.received()); got != 0 {
		t.Fatalf("the first check delivered %d messages; the log's history is not news", got)
	}
	if code, _, e := runCLI(t, "--root", f.root, "event", "--event", "governance_release_published", "--version", "2026-Q4", "--hash", "h3"); code != 0 {
		t.Fatalf("event: %s", e)
	}
	if err := runTelemetry(ctx, telemetryOptions{}, f.g); err != nil {
		t.Fatal(err)
	}
	got := f.hook.received()
	if len(got) != 1 || !strings.Contains(string(got[0]), "governance_release_published") {
		t.Fatalf("the webhook received %d messages, want the registry event notice: %q", len(got), got)
	}
	snap, err := src.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Telemetry.Alerts) != 0 {
		t.Fatalf("alerts %+v: this delivery must be an event notice only", snap.Telemetry.Alerts)
	}
	if ch := snap.Telemetry.Channels; len(ch) != 1 || !ch[0].LastDelivery.Equal(consoleNow) || len(ch[0].Pending) != 0 {
		t.Errorf("channels %+v, want the webhook delivered at %s, nothing owed", ch, consoleNow)
	}
	page := csRender(t, src, "/")
	if want := `<th scope="row">webhook</th><td><time datetime="2026-12-01T12:00:00Z">`; !strings.Contains(page, want) {
		t.Errorf("page lacks %s: %s", want, csSection(page, "telemetry"))
	}
}
