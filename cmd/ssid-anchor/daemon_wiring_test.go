package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/pinning"
	"github.com/ssid/ssid-anchor/anchor/pinning/psatest"
	"github.com/ssid/ssid-anchor/anchor/release"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
	"github.com/ssid/ssid-anchor/scheduler"
)

// section cuts the console page's <section id="id"> out of page.
func section(t *testing.T, page, id string) string {
	t.Helper()
	i := strings.Index(page, `<section id="`+id+`"`)
	if i < 0 {
		t.Fatalf("the console has no %s section:\n%s", id, page)
	}
	s := page[i:]
	if j := strings.Index(s, "</section>"); j >= 0 {
		s = s[:j]
	}
	return s
}

// TestDaemonServesConsole: a daemon on loopback (the built binary, an
// air-gapped repo, the real sample tree) serves the console at "/": the
// anchors table holds the manifest's CIDs, the jobs section the daemon's
// jobs with the anchor job's outcome; a same-origin POST /verify verifies
// on the daemon's node, a cross-origin one is refused.
func TestDaemonServesConsole(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	d := startDaemon(t, root, repo, nil)
	d.waitLog(t, `msg="job done" job=anchor`)
	base := "http://" + d.http
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, page := get("/")
	if code != 200 {
		t.Fatalf("/: %d\n%s", code, page)
	}
	anchors := section(t, page, "anchors")
	m := readManifest(t, root)
	if len(m.Records) == 0 {
		t.Fatal("the daemon anchored nothing")
	}
	for _, r := range m.Records {
		if !strings.Contains(anchors, r.IPFSCID) {
			t.Errorf("the anchors table lacks %s (%s)", r.IPFSCID, r.FilePath)
		}
	}
	jobs := section(t, page, "jobs")
	for _, want := range []string{`<th scope="row">anchor<br>`, `<th scope="row">quarterly<br><code class="muted">0 9 1 1,4,7,10 *</code>`, `badge ok`} {
		if !strings.Contains(jobs, want) {
			t.Errorf("the jobs section lacks %q:\n%s", want, jobs)
		}
	}

	post := func(hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/verify", nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post(map[string]string{"Origin": base, "Sec-Fetch-Site": "same-origin"})
	if code != 200 || !strings.HasPrefix(body, "verified: all ") {
		t.Fatalf("same-origin POST /verify: %d %q", code, body)
	}
	if _, page := get("/"); !strings.Contains(section(t, page, "verify"), "passed") {
		t.Errorf("the verify section does not show the run:\n%s", section(t, page, "verify"))
	}
	code, body = post(map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
	if code != http.StatusForbidden {
		t.Fatalf("cross-origin POST /verify: %d %q, want 403", code, body)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestQuarterlyJobRunsRelease: the quarterly job, fired by its cron slot
// on the fake clock, is `ssid-anchor release`: it builds the bundle,
// anchors it, reports remote pinning and sends the release notice, each
// step in the log. While an anchoring run and a telemetry check hold the
// daemon's gates it waits for them (saying so) instead of failing.
func TestQuarterlyJobRunsRelease(t *testing.T) {
	q, err := ops.ReleaseQuarter("", time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	root := bundleTree(t, q.String())
	repo := initRepo(t)
	h := newHook(t, 200)
	releaseTelemetry(t, root, withWebhook(h.URL))
	clk := scheduler.NewFakeClock(time.Date(2027, 1, 1, 8, 59, 30, 0, time.UTC))
	done := make(chan error, 4)
	d := jobsDaemon(t, root, repo, clk, func(job string, err error) {
		if job == jobQuarterly {
			done <- err
		}
	})
	log := &lockedBuffer{}
	d.g.log = slog.New(slog.NewTextHandler(log, nil))

	ctx := context.Background()
	leaveAnchor, err := d.anchorGate.enter(ctx, "test anchoring run", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	leaveTelemetry, err := d.telemetryGate.enter(ctx, "test telemetry check", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d.sched.Start()
	defer d.sched.Stop(ctx)
	if !clk.BlockUntil(1, 10*time.Second) {
		t.Fatal("scheduler loop not waiting")
	}
	clk.Advance(time.Minute) // 09:00 on 1 January: the quarterly slot
	waitFor := func(re string) {
		t.Helper()
		r := regexp.MustCompile(re)
		deadline := time.Now().Add(60 * time.Second)
		for !r.MatchString(log.String()) {
			if time.Now().After(deadline) {
				t.Fatalf("log never matched %q:\n%s", re, log.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(`waiting for the running test anchoring run`)
	leaveAnchor()
	waitFor(`waiting for the running test telemetry check`)
	leaveTelemetry()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("quarterly job: %v\n%s", err, log.String())
		}
	case <-time.After(120 * time.Second):
		t.Fatalf("the quarterly job did not finish:\n%s", log.String())
	}
	out := log.String()
	for _, want := range []string{`msg="[ok] bundle: built `, `msg="[ok] anchor: `, `msg="[skipped] remote-pin: no remote pinning service configured`, `msg="[ok] telemetry: webhook: sent`} {
		if !strings.Contains(out, want) {
			t.Errorf("the job's log lacks %q:\n%s", want, out)
		}
	}
	zip := fmt.Sprintf(tReleaseZip, q)
	sum := sha256File(t, filepath.Join(root, zip))
	found := false
	for _, r := range readManifest(t, root).Records {
		if r.FilePath == zip && r.FileHash == sum && r.Pinned && r.IPFSCID != "" {
			found = true
		}
	}
	if !found {
		t.Errorf("the anchor manifest has no pinned record of %s", zip)
	}
	if b := h.received(); len(b) == 0 || !bytes.Contains(bytes.Join(b, nil), []byte(release.EventName)) {
		t.Errorf("no release notice reached the webhook: %s", bytes.Join(b, []byte("\n")))
	}
}

// TestDaemonDrainsRemotePins: `anchor --remote cluster` sent to a running
// daemon ends pinned on the Pinning Service API server without `pins
// --retry`: the daemon's remote-pins job pushes right after the run and
// follows the pins up; its runs show in /metrics and on the console.
func TestDaemonDrainsRemotePins(t *testing.T) {
	svcNode := serviceNode(t)
	srv := psatest.New()
	defer srv.Close()
	srv.Delegates = svcNode.Addrs()
	root, repo, cfg := pinTree(t)
	writePinConfig(t, cfg, srv.URL, "")
	env := []string{pinTokenEnv + "=" + srv.Token}
	// A long debounce: the registry watcher must not anchor the new event
	// before `anchor --remote` does.
	d := startDaemonWith(t, root, repo, env, []string{"--config", cfg}, "--anchor-debounce", "10m")
	d.waitLog(t, `msg="job done" job=anchor`)
	g := []string{"--root", root, "--repo", repo, "--config", cfg}
	// The daemon anchored the tree at start; a new event gives new records.
	if code, _, stderr := runPinsBin(t, srv.Token, append(g, "event", "--event", "governance_update", "--version", "v2", "--hash", "h")...); code != 0 {
		t.Fatalf("event: exit %d\n%s", code, stderr)
	}
	mustWrite(t, filepath.Join(root, "05_documentation/reports/dashboard/dashboard_data.csv"), []byte("quarter,date,compliance_score\n2026-Q1,2026-01-01,97\n2026-Q2,2026-04-01,98\n"))
	randomFile(t, filepath.Join(root, "05_documentation/reports/dashboard/SSID_Governance_Dashboard.md"), 300<<10)
	code, _, stderr := runPinsBin(t, srv.Token, append(g, "anchor", "--remote", "cluster")...)
	if code != 0 {
		t.Fatalf("anchor --remote via the daemon: exit %d\n%s\n%s", code, stderr, d.log.String())
	}
	if !strings.Contains(stderr, "queued ") || len(queueOf(t, repo)) == 0 {
		t.Fatalf("anchor --remote queued nothing:\n%s", stderr)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		reqs := queueOf(t, repo)
		all := len(reqs) > 0
		for _, r := range reqs {
			all = all && r.Status == pinning.StatusPinned
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("requests not pinned after 90s: %+v\n%s", reqs, d.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(srv.Pins()) != len(queueOf(t, repo)) {
		t.Errorf("service holds %d pins for %d requests", len(srv.Pins()), len(queueOf(t, repo)))
	}
	d.waitLog(t, `msg="remote pins drained"`)
	// The manifest records them once the drain wrote it.
	deadline = time.Now().Add(30 * time.Second)
	for {
		pinned := 0
		for _, r := range readManifest(t, root).Records {
			for _, p := range r.RemotePins {
				if p.Service == "cluster" && p.Status == "pinned" {
					pinned++
				}
			}
		}
		if pinned == len(queueOf(t, repo)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("manifest records %d remote pins, want %d", pinned, len(queueOf(t, repo)))
		}
		time.Sleep(200 * time.Millisecond)
	}
	resp, err := http.Get("http://" + d.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`ssid_anchor_job_runs_total\{job="remote-pins"\} [1-9]`).Match(mb) {
		t.Errorf("/metrics does not count remote-pins runs:\n%s", grepLines(string(mb), "ssid_anchor_"))
	}
	resp, err = http.Get("http://" + d.http + "/")
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if rs := section(t, string(pb), "remote"); !strings.Contains(rs, "pinned") || !strings.Contains(rs, "cluster") {
		t.Errorf("the console's remote pins section:\n%s", rs)
	}
	if !strings.Contains(section(t, string(pb), "jobs"), "remote-pins") {
		t.Errorf("the console lists no remote-pins job")
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, s := range []string{stderr, d.log.String()} {
		if strings.Contains(s, srv.Token) {
			t.Error("the token was printed")
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestReleaseRemotePin: `release --remote cluster` queues the bundle and
// the release manifest and, without a daemon, pushes them with the node
// online until they are pinned; a service that refuses the token makes the
// step (and the command) fail, saying why.
func TestReleaseRemotePin(t *testing.T) {
	const q = "2026-Q3"
	svcNode := serviceNode(t)
	srv := psatest.New()
	defer srv.Close()
	srv.Delegates = svcNode.Addrs()
	root := bundleTree(t, q)
	repo := initRepo(t)
	cfg := filepath.Join(t.TempDir(), "appliance.json")
	writePinConfig(t, cfg, srv.URL, "")
	g := []string{"--root", root, "--repo", repo, "--config", cfg}

	code, out, errb := runPinsBin(t, "wrong-token", append(g, "--json", "release", "--quarter", q, "--remote", "cluster", "--remote-wait", "20s")...)
	d := parseRelease(t, out)
	if code != 1 || d.statuses() != "bundle=ok anchor=ok remote-pin=failed telemetry=skipped" || d.Steps[2].Error == "" {
		t.Fatalf("with a bad token: exit %d, %s\n%s\n%s", code, d.statuses(), out, errb)
	}
	t.Logf("remote-pin with a bad token: %s: %s", d.Steps[2].Summary, d.Steps[2].Error)

	code, out, errb = runPinsBin(t, srv.Token, append(g, "--json", "release", "--quarter", q, "--remote", "cluster", "--remote-wait", "60s")...)
	d = parseRelease(t, out)
	if code != 0 || d.statuses() != "bundle=ok anchor=ok remote-pin=ok telemetry=skipped" {
		t.Fatalf("release --remote cluster: exit %d, %s\n%s\n%s", code, d.statuses(), out, errb)
	}
	zip, man := fmt.Sprintf(tReleaseZip, q), fmt.Sprintf(tReleaseMan, q)
	s := d.Steps[2].Summary
	for _, want := range []string{zip + " " + d.IPFS.CID + " on cluster: pinned", man + " "} {
		if !strings.Contains(s, want) {
			t.Errorf("remote-pin summary lacks %q: %s", want, s)
		}
	}
	byFile := map[string]*pinning.Request{}
	for _, r := range queueOf(t, repo) {
		byFile[r.Meta.FilePath] = r
	}
	for _, f := range []string{zip, man} {
		if r := byFile[f]; r == nil || r.Status != pinning.StatusPinned || r.Service != "cluster" {
			t.Errorf("%s: request %+v", f, r)
		}
	}
	if r := byFile[zip]; r != nil && r.CID != d.IPFS.CID {
		t.Errorf("the bundle was pinned as %s, its CID is %s", r.CID, d.IPFS.CID)
	}
	if code, _, errb := runPinsBin(t, srv.Token, append(g, "verify")...); code != 0 {
		t.Fatalf("verify after release: exit %d\n%s", code, errb)
	}
	if strings.Contains(out+errb, srv.Token) {
		t.Error("the token was printed")
	}
}

// TestDaemonConsoleSources: the console the daemon builds reads its jobs
// from the scheduler (a failed run shows its error, a successful one ok),
// its remote pins from the queue with their last error, and its IPNS name
// from the daemon's last publication.
func TestDaemonConsoleSources(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	clk := scheduler.NewFakeClock(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	d := jobsDaemon(t, root, repo, clk, func(string, error) {})
	d.started = time.Now().UTC()
	d.sched.AddTriggered("boom", func(context.Context) error { return fmt.Errorf("the disk is full") })
	d.sched.Run("boom")
	d.sched.Run(jobAnchor)
	q := pinning.OpenQueue(pinning.QueueDir(repo), nil)
	if _, err := q.Enqueue([]pinning.Request{{Service: "cluster", CID: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", Name: "x",
		Meta: pinning.Meta{FilePath: "05_documentation/x.md"}}}); err != nil {
		t.Fatal(err)
	}
	if err := q.Update(func(cur []*pinning.Request) ([]*pinning.Request, error) {
		cur[0].LastError = "HTTP 503: try later"
		return cur, nil
	}); err != nil {
		t.Fatal(err)
	}
	const name = "k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8"
	d.mu.Lock()
	d.ipnsName = name
	d.mu.Unlock()

	h := d.console()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8089/", nil))
	page := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("GET /: %d\n%s", rec.Code, page)
	}
	if !strings.Contains(page, `title="`+name+`"`) {
		t.Errorf("the header does not show the IPNS name %s", name)
	}
	jobs := section(t, page, "jobs")
	for _, want := range []string{`<th scope="row">boom<br>`, `title="the disk is full">failed</span>`, `<th scope="row">anchor<br>`, `badge ok`} {
		if !strings.Contains(jobs, want) {
			t.Errorf("the jobs section lacks %q:\n%s", want, jobs)
		}
	}
	remote := section(t, page, "remote")
	for _, want := range []string{"cluster", "queued", "HTTP 503: try later", ` (05_documentation/x.md)">`} {
		if !strings.Contains(remote, want) {
			t.Errorf("the remote pins section lacks %q:\n%s", want, remote)
		}
	}
}

// TestReleaseRemotePinInDaemon: `release --remote cluster` sent to a
// running daemon pushes the bundle and the release manifest on the
// daemon's node; the step reports each request's state, and the daemon's
// remote-pins job follows them until they are pinned.
func TestReleaseRemotePinInDaemon(t *testing.T) {
	const q = "2026-Q3"
	svcNode := serviceNode(t)
	srv := psatest.New()
	defer srv.Close()
	srv.Delegates = svcNode.Addrs()
	root := bundleTree(t, q)
	repo := initRepo(t)
	cfg := filepath.Join(t.TempDir(), "appliance.json")
	writePinConfig(t, cfg, srv.URL, "")
	d := startDaemonWith(t, root, repo, []string{pinTokenEnv + "=" + srv.Token}, []string{"--config", cfg}, "--anchor-debounce", "10m")
	d.waitLog(t, `msg="job done" job=anchor`)
	g := []string{"--root", root, "--repo", repo, "--config", cfg}
	code, out, errb := runPinsBin(t, srv.Token, append(g, "--json", "release", "--quarter", q, "--remote", "cluster")...)
	doc := parseRelease(t, out)
	if code != 0 || doc.statuses() != "bundle=ok anchor=ok remote-pin=ok telemetry=skipped" {
		t.Fatalf("release via the daemon: exit %d, %s\n%s\n%s\n%s", code, doc.statuses(), out, errb, d.log.String())
	}
	zip, man := fmt.Sprintf(tReleaseZip, q), fmt.Sprintf(tReleaseMan, q)
	t.Logf("remote-pin step: %s", doc.Steps[2].Summary)
	if s := doc.Steps[2].Summary; !strings.Contains(s, zip+" "+doc.IPFS.CID+" on cluster: ") || !strings.Contains(s, man+" ") {
		t.Errorf("remote-pin summary: %s", s)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		byFile := map[string]pinning.Status{}
		for _, r := range queueOf(t, repo) {
			byFile[r.Meta.FilePath] = r.Status
		}
		if byFile[zip] == pinning.StatusPinned && byFile[man] == pinning.StatusPinned {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not pinned after 90s: %v\n%s", byFile, d.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
