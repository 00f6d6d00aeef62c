package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/scheduler/retry"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func ptr[T any](v T) *T { return &v }

// sampleMessage is a critical alert with one registry event, with text
// that needs escaping in every dialect.
func sampleMessage() Message {
	at := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	return Message{
		Kind: KindAlert, Level: LevelCritical, Alert: "compliance_score",
		Title: "[CRITICAL] SSID compliance score 88/100",
		Lines: []Line{
			{{Text: "Compliance score "}, {Text: "88/100", Bold: true}, {Text: " (previous 100/100, change -12)"}},
			{{Text: "Why: "}, {Text: "score 88 is below compliance_score_critical 90", Bold: true}},
			{{Text: "Dashboard: quarter 2026-Q1 <row> & more"}},
		},
		Fields: []Field{
			{Name: "Compliance Score", Value: "88/100"}, {Name: "Blueprint Version", Value: "v4.3"},
			{Name: "Root-24-LOCK", Value: "active"}, {Name: "Violations", Value: "0"},
		},
		Reasons: []string{"score 88 is below compliance_score_critical 90"},
		Events: []Event{{Name: "governance_release_published", Category: "release", Version: "v4.3.0", Quarter: "2026-Q1",
			Timestamp: "2026-03-31T11:58:00Z", ProofAnchor: "ed83883ffcc664cf5a5c264e9daa04f702450aa4b1cc3a23d35786fcfc25cfe1", Line: 122}},
		Metrics: Metrics{ComplianceScore: ptr(88.0), PreviousScore: ptr(100.0), Change: ptr(-12.0), Violations: ptr(0),
			Quarter: "2026-Q1", Date: "2026-03-31", BlueprintVersion: "v4.3", Root24Lock: "active", Source: "dashboard_data.csv:3"},
		Time: at, FirstSeen: at.Add(-time.Hour),
	}
}

// checkGolden compares got (compact JSON) with testdata/name, stored
// indented for review; -update rewrites it.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	var ind bytes.Buffer
	if err := json.Indent(&ind, got, "", "  "); err != nil {
		t.Fatalf("payload is not JSON: %v\n%s", err, got)
	}
	ind.WriteByte('\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, ind.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(ind.Bytes(), want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", name, ind.Bytes(), want)
	}
}

type recorded struct {
	method, path, query string
	header              http.Header
	body                []byte
}

// server is a loopback HTTP peer that records requests and answers with
// the n-th (0-based) response of a script.
type server struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

func newServer(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		n := len(s.reqs)
		s.reqs = append(s.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), b})
		s.mu.Unlock()
		answer(n, w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) requests() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.reqs...)
}

func okAnswer(_ int, w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }

// waitClock is the clock delivery tests inject: every wait returns at
// once, moves the clock on by its length and is recorded, so a test
// asserts the delays delivery chose, never how long it took.
type waitClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func newWaitClock() *waitClock {
	return &waitClock{now: time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)}
}

func (c *waitClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *waitClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.waits = append(c.waits, d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func (c *waitClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// fast are delivery options for tests: the product's retry policy, waits
// on a waitClock (opts.Clock.(*waitClock) reads them), a short 429 cap.
func fast(log *slog.Logger) Options {
	return Options{Timeout: 2 * time.Second, Attempts: 4, MaxRetryAfter: 5 * time.Second, Logger: log, Clock: newWaitClock()}
}

type channel interface {
	Name() string
	Notify(context.Context, Message) error
	Preview(Message) (Preview, error)
}

// httpChannels builds the three webhook channels against base, with a
// secret in each URL.
func httpChannels(base string, opts Options) map[string]channel {
	return map[string]channel{
		"slack": NewSlack(SlackConfig{Enabled: true, WebhookURL: base + "/services/T000/B000/slacksecrettoken", Channel: "#ssid-governance",
			Username: "SSID Governance Bot", IconEmoji: ":shield:"}, opts),
		"discord": NewDiscord(DiscordConfig{Enabled: true, WebhookURL: base + "/api/webhooks/123/discordsecrettoken", Username: "SSID Governance",
			AvatarURL: "https://example.org/avatar.png"}, opts),
		"webhook": NewWebhook(WebhookConfig{Enabled: true, URL: base + "/hook/webhooksecrettoken?key=querysecret", Method: "PUT",
			Headers: map[string]string{"Content-Type": "application/json", "User-Agent": "SSID-Governance-Telemetry/v4.3", "X-Team": "governance"},
			Secret:  "hmacsecretkey"}, opts),
	}
}

func TestPayloadsMatchGolden(t *testing.T) {
	s := newServer(t, okAnswer)
	chans := httpChannels(s.URL, fast(nil))
	for _, name := range []string{"slack", "discord", "webhook"} {
		t.Run(name, func(t *testing.T) {
			before := len(s.requests())
			if err := chans[name].Notify(context.Background(), sampleMessage()); err != nil {
				t.Fatal(err)
			}
			reqs := s.requests()[before:]
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			checkGolden(t, name+".golden.json", r.body)
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			pv, err := chans[name].Preview(sampleMessage())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pv.Body, r.body) {
				t.Errorf("dry-run payload differs from what was sent:\n%s\n%s", pv.Body, r.body)
			}
			if strings.Contains(pv.URL, "secret") {
				t.Errorf("preview URL not redacted: %s", pv.URL)
			}
			switch name {
			case "slack":
				if r.method != http.MethodPost || r.path != "/services/T000/B000/slacksecrettoken" {
					t.Errorf("slack request %s %s", r.method, r.path)
				}
			case "discord":
				if r.query != "wait=true" {
					t.Errorf("discord query %q, want wait=true", r.query)
				}
			case "webhook":
				if r.method != http.MethodPut {
					t.Errorf("webhook method %s, want the configured PUT", r.method)
				}
				if r.query != "key=querysecret" || r.header.Get("X-Team") != "governance" || r.header.Get("User-Agent") != "SSID-Governance-Telemetry/v4.3" {
					t.Errorf("webhook query %q headers %v", r.query, r.header)
				}
				if got, want := r.header.Get(SignatureHeader), Sign("hmacsecretkey", r.body); got != want || !strings.HasPrefix(got, "sha256=") || len(got) != 71 {
					t.Errorf("signature %q, want %q", got, want)
				}
			}
		})
	}
}

func TestSlackMrkdwnUsesSingleAsterisks(t *testing.T) {
	body, err := NewSlack(SlackConfig{WebhookURL: "https://hooks.slack.com/services/x"}, Options{}).payload(sampleMessage())
	if err != nil {
		t.Fatal(err)
	}
	var p slackPayload
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	txt := p.Attachments[0].Text
	if strings.Contains(txt, "**") || !strings.Contains(txt, "*88/100*") {
		t.Errorf("slack text not in mrkdwn: %q", txt)
	}
	if !strings.Contains(txt, "&lt;row&gt; &amp; more") {
		t.Errorf("slack text not escaped: %q", txt)
	}
	if len(p.Attachments[0].Fields) != 4 || p.Attachments[0].Color != "#ff0000" {
		t.Errorf("attachment %+v", p.Attachments[0])
	}
}

func TestSlackBodyOtherThanOKIsFailure(t *testing.T) {
	s := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "invalid_token") })
	err := NewSlack(SlackConfig{WebhookURL: s.URL + "/services/T/B/x"}, fast(nil)).Notify(context.Background(), sampleMessage())
	if err == nil || !strings.Contains(err.Error(), "invalid_token") {
		t.Fatalf("err = %v, want a failure quoting the body", err)
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("%d requests; a refused payload must not be retried", n)
	}
}

func TestDiscordLimits(t *testing.T) {
	m := sampleMessage()
	m.Title = strings.Repeat("T", 300)
	m.Lines = nil
	for range 300 {
		m.Lines = append(m.Lines, Line{{Text: strings.Repeat("d", 50)}})
	}
	m.Fields = nil
	for i := range 30 {
		m.Fields = append(m.Fields, Field{Name: strings.Repeat("n", 300), Value: strings.Repeat("v", 2000)})
		if i == 3 {
			m.Fields[i].Value = "   "
		}
	}
	body, err := NewDiscord(DiscordConfig{}, Options{}).payload(m)
	if err != nil {
		t.Fatal(err)
	}
	var p discordPayload
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	e := p.Embeds[0]
	runes := func(s string) int { return len([]rune(s)) }
	if runes(e.Title) > 256 || runes(e.Description) > 4096 || len(e.Fields) > 25 || runes(p.Content) > 2000 || runes(e.Footer.Text) > 2048 {
		t.Errorf("limits broken: title %d desc %d fields %d content %d", runes(e.Title), runes(e.Description), len(e.Fields), runes(p.Content))
	}
	total := runes(e.Title) + runes(e.Description) + runes(e.Footer.Text)
	for _, f := range e.Fields {
		if runes(f.Name) > 256 || runes(f.Value) > 1024 {
			t.Errorf("field over limit: %d/%d", runes(f.Name), runes(f.Value))
		}
		if strings.TrimSpace(f.Value) == "" {
			t.Errorf("empty field value sent")
		}
		total += runes(f.Name) + runes(f.Value)
	}
	if total > 6000 {
		t.Errorf("embed totals %d characters, Discord allows 6000", total)
	}
	if e.Color != 0xff0000 || e.Timestamp != "2026-03-31T12:00:00Z" {
		t.Errorf("color %d timestamp %q", e.Color, e.Timestamp)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.slack.com/services/T1/B2/XYZ":     "https://hooks.slack.com/services/***",
		"https://discord.com/api/webhooks/1/tok":         "https://discord.com/api/webhooks/***",
		"https://example.org/hook?token=abc":             "https://example.org/***",
		"https://user:pw@example.org/":                   "https://example.org/***",
		"https://example.org":                            "https://example.org/",
		"not a url with secret":                          "***",
		"":                                               "",
		"http://127.0.0.1:8080/services/T/B/secretvalue": "http://127.0.0.1:8080/services/***",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDeliverySequences runs the retry protocol against each webhook
// channel, and checks each wait delivery chose: a 429 with Retry-After: 1
// waits exactly that second; 5xx waits come from DefaultRetry (1 s, then
// 2 s, each ±50 %); a 4xx is not retried; a hang ends at the per-attempt
// timeout.
func TestDeliverySequences(t *testing.T) {
	type step func(w http.ResponseWriter, r *http.Request)
	status := func(code int) step {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(code)
			io.WriteString(w, http.StatusText(code))
		}
	}
	ok := func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }
	hang := func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	tooMany := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	}
	// backoff is DefaultRetry's n-th delay, give or take its jitter.
	type bounds struct{ lo, hi time.Duration }
	exactly := func(d time.Duration) bounds { return bounds{d, d} }
	backoff := []bounds{{500 * time.Millisecond, 1500 * time.Millisecond}, {time.Second, 3 * time.Second}}
	cases := []struct {
		name     string
		steps    []step
		timeout  time.Duration
		attempts int
		wantErr  string
		wantReqs int
		waits    []bounds
	}{
		{"429 then 200", []step{tooMany, ok}, 0, 4, "", 2, []bounds{exactly(time.Second)}},
		{"500 500 200", []step{status(500), status(500), ok}, 0, 4, "", 3, backoff[:2]},
		{"400 not retried", []step{status(400)}, 0, 4, "400 Bad Request", 1, nil},
		{"hang ends at timeout", []step{hang, hang}, 300 * time.Millisecond, 2, "no answer within 300ms", 2, backoff[:1]},
		{"500 until attempts run out", []step{status(503), status(503), status(503)}, 0, 3, "after 3 attempts", 3, backoff[:2]},
	}
	for _, name := range []string{"slack", "discord", "webhook"} {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				s := newServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
					if n < len(tc.steps) {
						tc.steps[n](w, r)
						return
					}
					ok(w, r)
				})
				opts := fast(nil)
				opts.Attempts = tc.attempts
				if tc.timeout > 0 {
					opts.Timeout = tc.timeout
				}
				err := httpChannels(s.URL, opts)[name].Notify(context.Background(), sampleMessage())
				if tc.wantErr == "" && err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				if n := len(s.requests()); n != tc.wantReqs {
					t.Errorf("%d requests, want %d", n, tc.wantReqs)
				}
				waits := opts.Clock.(*waitClock).Waits()
				if len(waits) != len(tc.waits) {
					t.Fatalf("waited %v, want %d waits", waits, len(tc.waits))
				}
				for i, w := range waits {
					if w < tc.waits[i].lo || w > tc.waits[i].hi {
						t.Errorf("wait %d was %s, want %s..%s", i, w, tc.waits[i].lo, tc.waits[i].hi)
					}
				}
			})
		}
	}
}

// TestBackoffFollowsPolicy: the waits after 5xx are the policy's delays
// (doubling, capped at Max); a 429 waits what it asks and does not count
// as a step of the backoff; 408 is transient as scheduler/retry says.
func TestBackoffFollowsPolicy(t *testing.T) {
	codes := []int{500, 429, 502, 408, 503}
	s := newServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n >= len(codes) {
			io.WriteString(w, "ok")
			return
		}
		if codes[n] == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(codes[n])
	})
	opts := fast(nil)
	opts.Attempts = 6
	opts.MaxRetryAfter = time.Minute
	opts.Retry = retry.Policy{Initial: time.Second, Max: 3 * time.Second, Multiplier: 2}
	if err := NewWebhook(WebhookConfig{URL: s.URL + "/h"}, opts).Notify(context.Background(), sampleMessage()); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{time.Second, 7 * time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}
	if got := opts.Clock.(*waitClock).Waits(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("waited %v, want %v", got, want)
	}
	if n := len(s.requests()); n != 6 {
		t.Errorf("%d requests, want 6", n)
	}
}

// TestRetryAfterHTTPDate: a Retry-After given as an HTTP date is read
// against the injected clock.
func TestRetryAfterHTTPDate(t *testing.T) {
	opts := fast(nil)
	clk := opts.Clock.(*waitClock)
	s := newServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 0 {
			w.Header().Set("Retry-After", clk.Now().Add(42*time.Second).Format(http.TimeFormat))
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		io.WriteString(w, "ok")
	})
	opts.MaxRetryAfter = time.Minute
	if err := NewWebhook(WebhookConfig{URL: s.URL + "/h"}, opts).Notify(context.Background(), sampleMessage()); err != nil {
		t.Fatal(err)
	}
	if got := clk.Waits(); len(got) != 1 || got[0] != 42*time.Second {
		t.Fatalf("waited %v, want [42s]", got)
	}
}

func TestDiscordRetryAfterFromJSON(t *testing.T) {
	s := newServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"message": "You are being rate limited.", "retry_after": 0.6, "global": false}`)
			return
		}
		io.WriteString(w, `{"id":"1"}`)
	})
	opts := fast(nil)
	err := NewDiscord(DiscordConfig{WebhookURL: s.URL + "/api/webhooks/1/x"}, opts).Notify(context.Background(), sampleMessage())
	if err != nil {
		t.Fatal(err)
	}
	reqs := s.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if waits := opts.Clock.(*waitClock).Waits(); len(waits) != 1 || waits[0] != 600*time.Millisecond {
		t.Errorf("retried after %v; Discord asked for 0.6s", waits)
	}
}

func TestRetryAfterIsCapped(t *testing.T) {
	s := newServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 0 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		io.WriteString(w, "ok")
	})
	opts := fast(nil)
	opts.MaxRetryAfter = 200 * time.Millisecond
	if err := NewWebhook(WebhookConfig{URL: s.URL + "/h"}, opts).Notify(context.Background(), sampleMessage()); err != nil {
		t.Fatal(err)
	}
	if waits := opts.Clock.(*waitClock).Waits(); len(waits) != 1 || waits[0] != 200*time.Millisecond {
		t.Errorf("waited %v; the wait must be capped at 200ms, not an hour", waits)
	}
}

// stuckClock never lets a wait end; it tells the test when one begins.
type stuckClock struct{ waiting chan time.Duration }

func (c stuckClock) Now() time.Time { return time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC) }
func (c stuckClock) After(d time.Duration) <-chan time.Time {
	c.waiting <- d
	return nil
}

func TestCancelStopsRetrying(t *testing.T) {
	s := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) })
	opts := fast(nil)
	clk := stuckClock{make(chan time.Duration, 1)}
	opts.Clock = clk
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-clk.waiting; cancel() }() // cancelled while waiting to retry
	err := NewWebhook(WebhookConfig{URL: s.URL + "/h"}, opts).Notify(ctx, sampleMessage())
	if err == nil || !strings.Contains(err.Error(), "stopped before retry") || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("%d requests; the cancel came before the first retry", n)
	}
}

// TestSecretsNeverLeak is Alertmanager's AssertNotifyLeaksNoSecret for each
// webhook channel: the secret is in the URL, the server echoes the path
// back, and a second run hits a closed port (a *url.Error, which prints the
// whole URL). Neither the error nor any log line may contain it.
func TestSecretsNeverLeak(t *testing.T) {
	secrets := []string{"slacksecrettoken", "discordsecrettoken", "webhooksecrettoken", "querysecret", "hmacsecretkey"}
	echo := newServer(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		io.WriteString(w, "bad request to "+r.URL.String())
	})
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	for _, base := range []string{echo.URL, closedURL} {
		for _, name := range []string{"slack", "discord", "webhook"} {
			t.Run(name, func(t *testing.T) {
				var logs bytes.Buffer
				opts := fast(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
				opts.Attempts = 2
				err := httpChannels(base, opts)[name].Notify(context.Background(), sampleMessage())
				if err == nil {
					t.Fatal("expected a failure")
				}
				for _, s := range secrets {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error leaks %q: %v", s, err)
					}
					if strings.Contains(logs.String(), s) {
						t.Errorf("log leaks %q:\n%s", s, logs.String())
					}
				}
				if logs.Len() == 0 {
					t.Error("no log line was written; the leak check saw nothing")
				}
			})
		}
	}
}

func TestValidateNeverQuotesSecrets(t *testing.T) {
	errs := []error{
		SlackConfig{Enabled: true, WebhookURL: "ftp://hooks.slack.com/services/T/B/topsecret"}.Validate(),
		DiscordConfig{Enabled: true, WebhookURL: "discord.com/api/webhooks/1/topsecret"}.Validate(),
		WebhookConfig{Enabled: true, URL: "gopher://x/topsecret", Method: "GET"}.Validate(),
	}
	for _, err := range errs {
		if err == nil {
			t.Fatal("invalid config accepted")
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("validation error quotes the secret: %v", err)
		}
	}
}

func TestRedactHeader(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"Authorization", "Bearer abc.def", "Bearer ***"},
		{"authorization", "abc", "***"},
		{"Proxy-Authorization", "Basic dXNlcjpwdw==", "Basic ***"},
		{"X-API-Key", "k1", "***"},
		{"X-Auth-Token", "t1", "***"},
		{"x-access-token", "t2", "***"},
		{"Cookie", "sid=1", "***"},
		{"X-Client-Secret", "s", "***"},
		{"User-Agent", "SSID/1", "SSID/1"},
		{"Content-Type", "application/json", "application/json"},
		{"X-SSID-Signature", "sha256=00", "sha256=00"},
	} {
		if got := RedactHeader(tc.name, tc.value); got != tc.want {
			t.Errorf("RedactHeader(%q, %q) = %q, want %q", tc.name, tc.value, got, tc.want)
		}
	}
}
