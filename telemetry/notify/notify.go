// Package notify delivers telemetry messages to people: Slack and Discord
// incoming webhooks, a generic JSON webhook and email over SMTP.
//
// Every channel renders the same Message in its own dialect (Slack mrkdwn,
// Discord markdown within Discord's limits, a JSON document, text + HTML
// mail), and delivers it as Alertmanager's notify package does: a timeout
// per attempt, backoff on network errors and transient statuses (5xx, 408,
// 425) with the project's one policy (scheduler/retry), a wait of
// Retry-After (or Discord's retry_after, capped) on 429, and no retry on
// any other 4xx. Every wait between attempts goes through Options.Clock. Secrets (webhook URLs, the HMAC key,
// the SMTP password) never appear in errors or log lines: errors carry a
// redacted URL and are scrubbed of every secret before they leave a channel.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ssid/ssid-anchor/scheduler/retry"
)

// Level is how bad a message is; it picks the colour.
type Level string

// Levels, from worst to best.
const (
	LevelCritical Level = "critical"
	LevelWarning  Level = "warning"
	LevelResolved Level = "resolved"
	LevelInfo     Level = "info"
)

// Color is the level's colour as #rrggbb (the seed script's palette).
func (l Level) Color() string { return fmt.Sprintf("#%06x", l.ColorInt()) }

// ColorInt is the level's colour as the integer Discord wants.
func (l Level) ColorInt() int {
	switch l {
	case LevelCritical:
		return 0xff0000
	case LevelWarning:
		return 0xff9900
	case LevelResolved:
		return 0x00ff00
	default:
		return 0x0099ff
	}
}

// Kind says why a message is sent.
type Kind string

// Kinds of message.
const (
	KindAlert    Kind = "alert"    // an alert started, changed level or repeats
	KindResolved Kind = "resolved" // a firing alert cleared
	KindEvent    Kind = "event"    // new registry events
	KindTest     Kind = "test"     // telemetry --test
)

// Span is a run of text, optionally bold. Channels render bold in their own
// markup (Slack *x*, Discord **x**, HTML <strong>), so no channel ever shows
// another's markers literally.
type Span struct {
	Text string
	Bold bool
}

// Line is one line of a message body.
type Line []Span

// Plain is the line without markup.
func (l Line) Plain() string {
	var b strings.Builder
	for _, s := range l {
		b.WriteString(s.Text)
	}
	return b.String()
}

// Field is a name/value pair shown as a column (Slack field, Discord field,
// table row in mail).
type Field struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Event is a registry event a message reports.
type Event struct {
	Name        string `json:"event"`
	Category    string `json:"category"`
	Version     string `json:"version,omitempty"`
	Quarter     string `json:"quarter,omitempty"`
	Timestamp   string `json:"timestamp,omitempty"`
	ProofAnchor string `json:"proof_anchor"`
	Line        int    `json:"line,omitempty"`
}

// Metrics are the readings behind a message, for the webhook document.
type Metrics struct {
	ComplianceScore  *float64 `json:"compliance_score"`
	PreviousScore    *float64 `json:"previous_score"`
	Change           *float64 `json:"change"`
	Violations       *int     `json:"violations"`
	Quarter          string   `json:"quarter,omitempty"`
	Date             string   `json:"date,omitempty"`
	BlueprintVersion string   `json:"blueprint_version,omitempty"`
	Root24Lock       string   `json:"root_24_lock,omitempty"`
	Source           string   `json:"source,omitempty"`
}

// Message is what every channel renders.
type Message struct {
	Kind  Kind
	Level Level
	// Alert names the alert (compliance_score, violations) for alert and
	// resolved messages.
	Alert      string
	Title      string
	Lines      []Line
	Fields     []Field
	Reasons    []string
	Events     []Event
	MoreEvents int
	Metrics    Metrics
	Time       time.Time
	FirstSeen  time.Time
	// Repeat is true when the message repeats an unchanged alert.
	Repeat bool
}

// Footer is the footer every channel prints.
const Footer = "SSID Governance Telemetry"

// Preview is a channel's exact payload, for --dry-run. The URL is redacted.
type Preview struct {
	Channel string            `json:"channel"`
	Method  string            `json:"method,omitempty"`
	URL     string            `json:"url,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
	// Server and Mail are set for email: the SMTP endpoint and the whole
	// RFC 5322 message as it would be sent.
	Server string `json:"server,omitempty"`
	Mail   string `json:"mail,omitempty"`
}

// Options tune delivery. The zero value means the defaults below; tests
// shorten them.
type Options struct {
	// Client sends HTTP requests; nil means a client of its own.
	Client *http.Client
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration
	// Attempts is how often a transient failure is tried in all (default 4).
	Attempts int
	// Retry gives the wait after each transient failure but a 429; the
	// zero value means DefaultRetry.
	Retry retry.Policy
	// MaxRetryAfter caps the wait a 429 asks for (default 60s).
	MaxRetryAfter time.Duration
	// Clock is what delivery waits on between attempts, and the time an
	// HTTP-date Retry-After is read against; nil means the wall clock.
	// scheduler.Clock satisfies it.
	Clock Clock
	// Logger gets one line per failed attempt; nil discards.
	Logger *slog.Logger
	// UserAgent is sent unless a channel's headers set their own.
	UserAgent string
}

// Clock is the time source delivery waits on.
type Clock interface {
	Now() time.Time
	// After is time.After: the channel receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time                         { return time.Now() }
func (wallClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// DefaultRetry is the channels' backoff: 1 s, 2 s, 4 s ... up to 30 s,
// each ±50 %. Shorter than retry.Default (2 s up to 10 min, for the
// persistent remote pin queue): a channel retries within one telemetry
// check, and a channel that still fails is tried again at the next check.
func DefaultRetry() retry.Policy {
	return retry.Policy{Initial: time.Second, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.5}
}

func (o Options) timeout() time.Duration { return orDefault(o.Timeout, 10*time.Second) }

func (o Options) retryPolicy() retry.Policy {
	if o.Retry == (retry.Policy{}) {
		return DefaultRetry()
	}
	return o.Retry
}

func (o Options) clock() Clock {
	if o.Clock != nil {
		return o.Clock
	}
	return wallClock{}
}

func (o Options) maxRetryAfter() time.Duration {
	return orDefault(o.MaxRetryAfter, 60*time.Second)
}

func (o Options) attempts() int {
	if o.Attempts <= 0 {
		return 4
	}
	return o.Attempts
}

func (o Options) client() *http.Client {
	if o.Client != nil {
		return o.Client
	}
	return &http.Client{}
}

func (o Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (o Options) userAgent() string {
	if o.UserAgent != "" {
		return o.UserAgent
	}
	return "ssid-anchor-telemetry"
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Error is a delivery that did not succeed. Its text is already scrubbed of
// the channel's secrets.
type Error struct {
	Channel   string
	Attempts  int
	Retryable bool // the last failure was transient; a later check may succeed
	msg       string
	ctxErr    error
}

func (e *Error) Error() string { return e.msg }

// Is lets callers recognise a delivery cut short by its context.
func (e *Error) Is(target error) bool {
	return e.ctxErr != nil && errors.Is(e.ctxErr, target)
}

// result is the outcome of one attempt.
type result struct {
	err   error
	retry bool
	// wait is what a 429 asked for; zero means use the backoff.
	wait time.Duration
}

// deliver runs attempt until it succeeds, fails permanently, runs out of
// attempts or ctx ends. Each attempt gets its own timeout. The wait after a
// 429 is what the server asked (capped); after any other transient failure
// it is the policy's delay for the failures so far, 429s not counted.
func (o Options) deliver(ctx context.Context, channel string, s scrubber, attempt func(context.Context) result) error {
	log := o.logger().With("channel", channel)
	policy := o.retryPolicy()
	failures := 0 // transient failures that were not a 429
	var last result
	n := 0
	for n < o.attempts() {
		n++
		actx, cancel := context.WithTimeout(ctx, o.timeout())
		last = attempt(actx)
		if last.err != nil && actx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			last = result{err: fmt.Errorf("no answer within %s", o.timeout()), retry: true}
		}
		cancel()
		if last.err == nil {
			if n > 1 {
				log.Info("delivered after retry", "attempts", n)
			}
			return nil
		}
		msg := s.scrub(last.err.Error())
		if !last.retry || n >= o.attempts() {
			break
		}
		var wait time.Duration
		if last.wait > 0 {
			wait = min(last.wait, o.maxRetryAfter())
		} else {
			failures++
			wait = policy.Delay(failures)
		}
		log.Warn("delivery attempt failed; retrying", "attempt", n, "retry_in", wait.String(), "error", msg)
		select {
		case <-o.clock().After(wait):
		case <-ctx.Done():
			return &Error{Channel: channel, Attempts: n, Retryable: true, ctxErr: ctx.Err(),
				msg: fmt.Sprintf("%s: %s (stopped before retry: %v)", channel, msg, ctx.Err())}
		}
	}
	msg := s.scrub(last.err.Error())
	e := &Error{Channel: channel, Attempts: n, Retryable: last.retry, ctxErr: ctx.Err()}
	if n > 1 {
		e.msg = fmt.Sprintf("%s: %s (after %d attempts)", channel, msg, n)
	} else {
		e.msg = fmt.Sprintf("%s: %s", channel, msg)
	}
	log.Error("delivery failed", "attempts", n, "retryable", last.retry, "error", msg)
	return e
}

// httpRequest is one webhook call.
type httpRequest struct {
	method   string
	url      string // the secret one
	redacted string
	headers  http.Header
	body     []byte
	// ok decides whether a 2xx answer is a success (Slack wants body "ok").
	ok func(status int, body []byte) error
}

// maxBody bounds how much of an answer is read.
const maxBody = 64 << 10

func (o Options) doHTTP(ctx context.Context, r httpRequest) result {
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, bytes.NewReader(r.body))
	if err != nil {
		// The error text would quote the URL.
		return result{err: fmt.Errorf("building request for %s: invalid URL or method", r.redacted)}
	}
	for k, vs := range r.headers {
		req.Header[k] = vs
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", o.userAgent())
	}
	resp, err := o.client().Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // *url.Error prints the whole URL; keep only the cause
		}
		if ctx.Err() != nil {
			return result{err: fmt.Errorf("%s %s: %w", r.method, r.redacted, ctx.Err()), retry: true}
		}
		return result{err: fmt.Errorf("%s %s: %v", r.method, r.redacted, err), retry: true}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if r.ok != nil {
			if err := r.ok(resp.StatusCode, body); err != nil {
				return result{err: fmt.Errorf("%s %s: %w", r.method, r.redacted, err)}
			}
		}
		return result{}
	case resp.StatusCode == http.StatusTooManyRequests:
		wait := retryAfter(resp.Header, body, o.clock().Now())
		return result{err: fmt.Errorf("%s %s: %s (rate limited; retry after %s)", r.method, r.redacted, resp.Status, wait), retry: true, wait: max(wait, time.Millisecond)}
	case retry.Transient(resp.StatusCode):
		return result{err: fmt.Errorf("%s %s: %s%s", r.method, r.redacted, resp.Status, snippet(body)), retry: true}
	default:
		return result{err: fmt.Errorf("%s %s: %s%s (not retried: the request itself was refused)", r.method, r.redacted, resp.Status, snippet(body))}
	}
}

// retryAfter reads the wait a 429 asks for: the Retry-After header
// (seconds, fractions accepted as Discord sends them, or an HTTP date read
// against now by retry.ParseRetryAfter), else Discord's JSON retry_after
// (float seconds). Without either it waits one second, never zero, so a 429
// is never hot-looped.
func retryAfter(h http.Header, body []byte, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
			return time.Duration(s * float64(time.Second))
		}
		if d, ok := retry.ParseRetryAfter(v, now); ok {
			if d > 0 {
				return d
			}
			return time.Second
		}
	}
	var d struct {
		RetryAfter *float64 `json:"retry_after"`
	}
	if json.Unmarshal(body, &d) == nil && d.RetryAfter != nil && *d.RetryAfter >= 0 {
		return time.Duration(*d.RetryAfter * float64(time.Second))
	}
	return time.Second
}

func snippet(body []byte) string {
	s := strings.TrimSpace(string(body))
	if s == "" {
		return ""
	}
	return ": " + truncate(strings.Join(strings.Fields(s), " "), 200)
}

// truncate cuts s to at most n runes, ending in "…" when cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// scrubber removes secrets from text that leaves a channel.
type scrubber []string

func newScrubber(secrets ...string) scrubber {
	var s scrubber
	for _, v := range secrets {
		if len(v) < 4 {
			continue
		}
		s = append(s, v)
		if u, err := url.Parse(v); err == nil && u.Host != "" {
			if u.Path != "" && u.Path != "/" {
				s = append(s, u.Path, u.EscapedPath())
			}
			if u.RawQuery != "" {
				s = append(s, u.RawQuery)
			}
			if p := u.User.String(); p != "" {
				s = append(s, p)
			}
		}
	}
	return s
}

func (s scrubber) scrub(text string) string {
	for _, v := range s {
		if v != "" {
			text = strings.ReplaceAll(text, v, "***")
		}
	}
	return text
}

// credentialHeaderWords mark header names whose values are credentials.
var credentialHeaderWords = []string{"authorization", "token", "key", "secret", "cookie", "auth", "passw", "credential", "session"}

// SensitiveHeader says whether a header's name suggests its value is a
// credential (Authorization, X-Api-Key, X-Auth-Token, Cookie, ...), so it
// must never be printed. Case does not matter.
func SensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	for _, w := range credentialHeaderWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// RedactHeader is a header value fit to print: a credential is replaced by
// *** (keeping an auth scheme such as "Bearer", which says what kind of
// credential is configured without revealing it).
func RedactHeader(name, value string) string {
	if !SensitiveHeader(name) || value == "" {
		return value
	}
	if strings.HasSuffix(strings.ToLower(name), "authorization") {
		if scheme, _, ok := strings.Cut(value, " "); ok && scheme != "" {
			return scheme + " ***"
		}
	}
	return "***"
}

// RedactURL shows where a webhook points without its secret part: scheme,
// host, and for Slack and Discord the fixed path prefix, then ***
// (https://hooks.slack.com/services/***). An empty URL stays empty.
func RedactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "***"
	}
	base := u.Scheme + "://" + u.Host
	for _, prefix := range []string{"/services/", "/api/webhooks/"} {
		if strings.HasPrefix(u.Path, prefix) {
			return base + prefix + "***"
		}
	}
	if (u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.User == nil {
		return base + "/"
	}
	return base + "/***"
}

// validURL checks that a webhook URL is an absolute http(s) URL; the error
// never quotes the URL itself.
func validURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("must start with https:// (or http://)")
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	return nil
}
