package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// WebhookConfig is notifications.webhook of the telemetry config.
type WebhookConfig struct {
	Enabled bool   `json:"enabled"`
	URL     string `json:"url"`
	Method  string `json:"method"`
	// Headers are sent as given; Content-Type defaults to application/json.
	Headers map[string]string `json:"headers"`
	// Secret, when set, signs the body: X-SSID-Signature: sha256=<hex HMAC>.
	Secret      string `json:"secret"`
	Description string `json:"description,omitempty"`
}

// SignatureHeader carries the HMAC-SHA256 of the body when a secret is set.
const SignatureHeader = "X-SSID-Signature"

// Validate names the key and the rule; the URL and secret are never quoted.
func (c WebhookConfig) Validate() error {
	var errs []error
	if c.Enabled && c.URL == "" {
		errs = append(errs, errors.New("url: required when enabled (set it or WEBHOOK_URL)"))
	}
	if c.URL != "" {
		if err := validURL(c.URL); err != nil {
			errs = append(errs, fmt.Errorf("url: %v (%s)", err, RedactURL(c.URL)))
		}
	}
	switch strings.ToUpper(c.Method) {
	case "", http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		errs = append(errs, fmt.Errorf("method: must be POST, PUT or PATCH (%q)", c.Method))
	}
	keys := make([]string, 0, len(c.Headers))
	for k := range c.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !validHeaderName(k) {
			errs = append(errs, fmt.Errorf("headers: %q is not a valid header name", k))
		} else if strings.ContainsAny(c.Headers[k], "\r\n\x00") {
			errs = append(errs, fmt.Errorf("headers.%s: value contains characters not allowed in a header", k))
		}
		if strings.EqualFold(k, SignatureHeader) {
			errs = append(errs, fmt.Errorf("headers.%s: set by the webhook secret, not by hand", k))
		}
	}
	return errors.Join(errs...)
}

// Webhook sends the alert as a JSON document to any HTTP endpoint.
type Webhook struct {
	cfg  WebhookConfig
	opts Options
	s    scrubber
}

// NewWebhook returns the generic webhook channel.
func NewWebhook(cfg WebhookConfig, opts Options) *Webhook {
	return &Webhook{cfg: cfg, opts: opts, s: newScrubber(cfg.URL, cfg.Secret)}
}

// Name is "webhook".
func (*Webhook) Name() string { return "webhook" }

// Document is the JSON the webhook receives; its shape is versioned.
type Document struct {
	Version    string   `json:"version"`
	Source     string   `json:"source"`
	Kind       Kind     `json:"kind"`
	Status     string   `json:"status"`
	Level      Level    `json:"level"`
	Alert      string   `json:"alert,omitempty"`
	Title      string   `json:"title"`
	Text       string   `json:"text"`
	Timestamp  string   `json:"timestamp"`
	FirstSeen  string   `json:"first_seen,omitempty"`
	Repeat     bool     `json:"repeat"`
	Reasons    []string `json:"reasons"`
	Metrics    Metrics  `json:"metrics"`
	Fields     []Field  `json:"fields"`
	Events     []Event  `json:"events"`
	MoreEvents int      `json:"more_events"`
}

// NewDocument builds the webhook document for m.
func NewDocument(m Message) Document {
	status := "info"
	switch m.Kind {
	case KindAlert:
		status = "firing"
	case KindResolved:
		status = "resolved"
	case KindTest:
		status = "test"
	}
	lines := make([]string, 0, len(m.Lines))
	for _, l := range m.Lines {
		lines = append(lines, l.Plain())
	}
	d := Document{
		Version: "1", Source: "ssid-anchor", Kind: m.Kind, Status: status, Level: m.Level, Alert: m.Alert,
		Title: m.Title, Text: strings.Join(lines, "\n"), Timestamp: m.Time.UTC().Format(time.RFC3339),
		Repeat: m.Repeat, Reasons: m.Reasons, Metrics: m.Metrics, Fields: m.Fields, Events: m.Events, MoreEvents: m.MoreEvents,
	}
	if !m.FirstSeen.IsZero() {
		d.FirstSeen = m.FirstSeen.UTC().Format(time.RFC3339)
	}
	if d.Reasons == nil {
		d.Reasons = []string{}
	}
	if d.Fields == nil {
		d.Fields = []Field{}
	}
	if d.Events == nil {
		d.Events = []Event{}
	}
	return d
}

func (n *Webhook) method() string {
	if n.cfg.Method == "" {
		return http.MethodPost
	}
	return strings.ToUpper(n.cfg.Method)
}

// Sign is the signature header value for body under secret.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (n *Webhook) request(m Message) ([]byte, http.Header, error) {
	body, err := marshal(NewDocument(m))
	if err != nil {
		return nil, nil, err
	}
	h := http.Header{}
	for k, v := range n.cfg.Headers {
		h.Set(k, v)
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	if n.cfg.Secret != "" {
		h.Set(SignatureHeader, Sign(n.cfg.Secret, body))
	}
	return body, h, nil
}

// Preview is the exact request Notify would send.
func (n *Webhook) Preview(m Message) (Preview, error) {
	body, h, err := n.request(m)
	if err != nil {
		return Preview{}, err
	}
	hm := map[string]string{}
	for k := range h {
		hm[k] = RedactHeader(k, h.Get(k))
	}
	return Preview{Channel: n.Name(), Method: n.method(), URL: RedactURL(n.cfg.URL), Headers: hm, Body: body}, nil
}

// Notify sends m with the configured method and headers.
func (n *Webhook) Notify(ctx context.Context, m Message) error {
	body, h, err := n.request(m)
	if err != nil {
		return err
	}
	req := httpRequest{method: n.method(), url: n.cfg.URL, redacted: RedactURL(n.cfg.URL), body: body, headers: h}
	return n.opts.deliver(ctx, n.Name(), n.s, func(ctx context.Context) result { return n.opts.doHTTP(ctx, req) })
}

// validHeaderName accepts an RFC 9110 token.
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}
