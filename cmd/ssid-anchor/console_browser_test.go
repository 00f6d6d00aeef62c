package main

import (
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromium finds the browser; the test fails without one, because a
// console nobody has looked at in a browser is not tested.
func csChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SSID_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is required for the console's browser test: apt-get install -y chromium (.ci/run does this), or set SSID_CHROMIUM")
	return ""
}

// browser starts headless Chromium on a throwaway profile, with every
// background service that would reach the internet turned off.
func csBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(csChromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancelC := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelC(); cancelB(); cancelA() })
	return ctx
}

// anchorRow is one row of the anchors table as the browser shows it.
type anchorRow struct {
	Path string `json:"path"`
	CID  string `json:"cid"`  // the whole CID (the link's title)
	Text string `json:"text"` // as shown: shortened in the middle
	Href string `json:"href"`
}

// TestConsoleInBrowser: a real Chromium loads the console of a daemon on
// loopback serving an anchored tree, finds every file's
// latest CID in the anchors table, follows a CID link to the gateway and
// receives the file's exact bytes, opens a file's history, and leaves
// screenshots (desktop and phone) as test artifacts.
func TestConsoleInBrowser(t *testing.T) {
	f := newConsoleFixture(t)
	// The console of a daemon on loopback (the built binary on the
	// fixture's tree and repo), as an operator opens it.
	d := startDaemon(t, f.root, f.repo, nil)
	d.waitLog(t, `msg="job done" job=anchor`)
	base := "http://" + d.http

	// Verify now the documented way (a POST without browser headers), so
	// the page has results to show.
	resp, err := http.Post(base+"/verify", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if body := csReadAll(t, resp); resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "verified: all") {
		t.Fatalf("POST /verify = %d %q", resp.StatusCode, body)
	}

	// Then a bad dashboard row and one telemetry check: the page must
	// show the alert it raised.
	csAppend(t, filepath.Join(f.root, f.paths.DashboardCSV[0]), "2026-Q4,2026-12-01,88,2,3,pending,false,FAIL\n")
	if err := runTelemetry(context.Background(), telemetryOptions{}, f.g); err != nil {
		t.Fatalf("telemetry check: %v", err)
	}

	ctx := csBrowser(t)
	man := readManifest(t, f.root)
	want := csLatestCIDs(man)

	var headerDisplay, title, alert string
	var rows []anchorRow
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`table.anchors`)),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) (err error) {
			if title, err = chromedp.Title()(ctx, tg); err != nil {
				return err
			}
			rows, err = chromedp.Evaluate[[]anchorRow](`Array.from(document.querySelectorAll("table.anchors tbody tr:not(.detail)")).map(tr => ({
				path: tr.querySelector("th a").textContent.trim(),
				cid: tr.querySelector("a.cid").getAttribute("title"),
				text: tr.querySelector("a.cid").textContent.trim(),
				href: tr.querySelector("a.cid").getAttribute("href")}))`)(ctx, tg)
			if err != nil {
				return err
			}
			if alert, err = chromedp.Text(chromedp.CSS(`#alerts li.alert`))(ctx, tg); err != nil {
				return err
			}
			// The stylesheet loaded under the page's CSP (default-src 'self').
			headerDisplay, err = chromedp.Evaluate[string](`getComputedStyle(document.querySelector("header.top")).display`)(ctx, tg)
			return err
		}),
	)
	if err != nil {
		t.Fatalf("loading the console: %v", err)
	}
	if title != "ssid-anchor console" || headerDisplay != "flex" {
		t.Errorf("title %q, header display %q: the page or its CSS did not load", title, headerDisplay)
	}
	if !strings.Contains(alert, "critical compliance_score since 2026-12-01 12:00 UTC") {
		t.Errorf("the firing alert reads %q", alert)
	}
	if len(rows) != len(want) {
		t.Fatalf("the browser shows %d anchors rows %+v, the manifest has %d files", len(rows), rows, len(want))
	}
	for _, r := range rows {
		if want[r.Path] != r.CID || r.Href != "/ipfs/"+r.CID || r.Text != r.CID[:10]+"…"+r.CID[len(r.CID)-6:] {
			t.Errorf("row %s shows CID %s (%s) linked to %s; the manifest's latest CID is %s", r.Path, r.CID, r.Text, r.Href, want[r.Path])
		}
	}

	dir := csArtifactsDir(t)
	shot := func(name string) {
		t.Helper()
		take := chromedp.FullScreenshot(100)
		if strings.HasSuffix(name, "-top.png") {
			take = chromedp.CaptureScreenshot() // what the screen shows first
		}
		png, err := chromedp.Run(ctx, take)
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s (%d bytes)", p, len(png))
	}
	shot("console.png")

	// Follow the registry log's CID link: the browser receives exactly
	// the file's bytes from the node's gateway.
	logCID := want[f.paths.EventsLog]
	logBytes, err := os.ReadFile(filepath.Join(f.root, f.paths.EventsLog))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reqID network.RequestID
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventResponseReceived); ok && strings.HasSuffix(e.Response.URL, "/ipfs/"+logCID) {
			mu.Lock()
			reqID = e.RequestID
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	gwResp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`table.anchors a.cid[href="/ipfs/`+logCID+`"]`)))
	if err != nil {
		t.Fatalf("following the CID link: %v", err)
	}
	if gwResp.Status != http.StatusOK {
		t.Fatalf("the gateway answered the browser %d", gwResp.Status)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	id := reqID
	mu.Unlock()
	got, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (network.GetResponseBodyResult, error) {
		return cdp.Call(ctx, tg, network.GetResponseBody, network.GetResponseBodyParams{RequestID: id})
	})
	if err != nil {
		t.Fatalf("reading the gateway response in the browser (request %q): %v", id, err)
	}
	body := got.Body
	if loc != base+"/ipfs/"+logCID {
		t.Errorf("the link led to %s", loc)
	}
	if string(body) != string(logBytes) {
		t.Fatalf("the browser received %d bytes (%q…), the registry log has %d", len(body), csHead(body), len(logBytes))
	}
	t.Logf("followed %s: %d bytes, identical to %s (base64 head %s)", loc, len(body), f.paths.EventsLog, base64.StdEncoding.EncodeToString(body[:min(12, len(body))]))

	// A file's history is one click on its path.
	var versions int
	var history string
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`table.anchors`)),
		chromedp.Click(chromedp.CSS(`table.anchors th a[title="History of `+f.paths.EventsLog+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#anchors-h code`)),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) (err error) {
			if history, err = chromedp.Text(chromedp.CSS(`#anchors-h`))(ctx, tg); err != nil {
				return err
			}
			versions, err = chromedp.Evaluate[int](`document.querySelectorAll("table.anchors tbody tr:not(.detail)").length`)(ctx, tg)
			return err
		}),
	); err != nil {
		t.Fatalf("opening the history: %v", err)
	}
	wantVersions := 0
	for _, r := range man.Records {
		if r.FilePath == f.paths.EventsLog {
			wantVersions++
		}
	}
	if !strings.Contains(history, f.paths.EventsLog) || versions != wantVersions || wantVersions < 2 {
		t.Errorf("history page %q shows %d versions, the manifest has %d", history, versions, wantVersions)
	}
	shot("console-history.png")

	// Dark mode follows prefers-color-scheme, with no script.
	var bg string
	if err := chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
			})
			return err
		}),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`table.anchors`)),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) (err error) {
			bg, err = chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`)(ctx, tg)
			return err
		}),
	); err != nil {
		t.Fatalf("dark mode: %v", err)
	}
	if bg != "rgb(13, 17, 23)" {
		t.Errorf("with prefers-color-scheme: dark the background is %s", bg)
	}
	shot("console-dark.png")

	// The same page on a phone.
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`table.anchors`)),
	); err != nil {
		t.Fatalf("phone viewport: %v", err)
	}
	// Against the screen's 390 px: a phone's layout viewport grows to a page
	// that is too wide, so innerWidth alone would agree with it.
	width, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`Math.max(document.documentElement.scrollWidth, window.innerWidth)`))
	if err != nil {
		t.Fatal(err)
	}
	if width > 390 {
		t.Errorf("on a 390 px phone the page is %.0f px wide: it scrolls sideways", width)
	}
	shot("console-phone-top.png")
	shot("console-phone.png")
}

func csHead(b []byte) []byte { return b[:min(40, len(b))] }
