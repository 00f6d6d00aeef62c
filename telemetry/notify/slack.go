package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// SlackConfig is notifications.slack of the telemetry config.
type SlackConfig struct {
	Enabled    bool   `json:"enabled"`
	WebhookURL string `json:"webhook_url"`
	// Channel, Username and IconEmoji override the webhook's defaults
	// (webhooks created by Slack apps may ignore them).
	Channel     string `json:"channel"`
	Username    string `json:"username"`
	IconEmoji   string `json:"icon_emoji"`
	Description string `json:"description,omitempty"`
}

// Validate names the key and the rule; the URL itself is never quoted.
func (c SlackConfig) Validate() error {
	var errs []error
	if c.Enabled && c.WebhookURL == "" {
		errs = append(errs, errors.New("webhook_url: required when enabled (set it or SLACK_WEBHOOK_URL)"))
	}
	if c.WebhookURL != "" {
		if err := validURL(c.WebhookURL); err != nil {
			errs = append(errs, fmt.Errorf("webhook_url: %v (%s)", err, RedactURL(c.WebhookURL)))
		}
	}
	if c.IconEmoji != "" && (!strings.HasPrefix(c.IconEmoji, ":") || !strings.HasSuffix(c.IconEmoji, ":") || len(c.IconEmoji) < 3) {
		errs = append(errs, fmt.Errorf("icon_emoji: must look like :name: (%q)", c.IconEmoji))
	}
	return errors.Join(errs...)
}

// Slack posts to an incoming webhook: text plus one legacy attachment, the
// only way to get the coloured bar, with the four fields.
type Slack struct {
	cfg  SlackConfig
	opts Options
	s    scrubber
}

// NewSlack returns the Slack channel.
func NewSlack(cfg SlackConfig, opts Options) *Slack {
	return &Slack{cfg: cfg, opts: opts, s: newScrubber(cfg.WebhookURL)}
}

// Name is "slack".
func (*Slack) Name() string { return "slack" }

type slackField struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short"`
}

type slackAttachment struct {
	Color    string       `json:"color"`
	Title    string       `json:"title"`
	Text     string       `json:"text"`
	Fallback string       `json:"fallback"`
	Fields   []slackField `json:"fields"`
	Footer   string       `json:"footer"`
	Ts       int64        `json:"ts"`
	MrkdwnIn []string     `json:"mrkdwn_in"`
}

type slackPayload struct {
	Channel     string            `json:"channel,omitempty"`
	Username    string            `json:"username,omitempty"`
	IconEmoji   string            `json:"icon_emoji,omitempty"`
	Text        string            `json:"text"`
	Attachments []slackAttachment `json:"attachments"`
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// slackLine renders a line in Slack mrkdwn, where bold is a single *.
func slackLine(l Line) string {
	var b strings.Builder
	for _, sp := range l {
		t := slackEscape(sp.Text)
		if sp.Bold && strings.TrimSpace(t) != "" {
			b.WriteString("*" + t + "*")
		} else {
			b.WriteString(t)
		}
	}
	return b.String()
}

func (n *Slack) payload(m Message) ([]byte, error) {
	lines := make([]string, 0, len(m.Lines)+len(m.Events))
	for _, l := range m.Lines {
		lines = append(lines, slackLine(l))
	}
	for _, l := range eventLines(m) {
		lines = append(lines, slackLine(l))
	}
	fields := make([]slackField, 0, len(m.Fields))
	for _, f := range m.Fields {
		fields = append(fields, slackField{Title: f.Name, Value: slackEscape(orNA(f.Value)), Short: true})
	}
	p := slackPayload{
		Channel: n.cfg.Channel, Username: n.cfg.Username, IconEmoji: n.cfg.IconEmoji,
		Text: "*" + slackEscape(m.Title) + "*",
		Attachments: []slackAttachment{{
			Color: m.Level.Color(), Title: truncate(m.Title, 1024), Text: strings.Join(lines, "\n"),
			Fallback: m.Title, Fields: fields, Footer: Footer, Ts: m.Time.Unix(), MrkdwnIn: []string{"text"},
		}},
	}
	return marshal(p)
}

// Preview is the exact request Notify would send.
func (n *Slack) Preview(m Message) (Preview, error) {
	body, err := n.payload(m)
	if err != nil {
		return Preview{}, err
	}
	return Preview{Channel: n.Name(), Method: http.MethodPost, URL: RedactURL(n.cfg.WebhookURL),
		Headers: map[string]string{"Content-Type": "application/json"}, Body: body}, nil
}

// Notify posts m. A 200 whose body is not "ok" is a failure: Slack reports
// some errors that way.
func (n *Slack) Notify(ctx context.Context, m Message) error {
	body, err := n.payload(m)
	if err != nil {
		return err
	}
	req := httpRequest{
		method: http.MethodPost, url: n.cfg.WebhookURL, redacted: RedactURL(n.cfg.WebhookURL), body: body,
		headers: http.Header{"Content-Type": {"application/json"}},
		ok: func(_ int, b []byte) error {
			if strings.TrimSpace(string(b)) != "ok" {
				return fmt.Errorf("slack answered 200 without \"ok\"%s", snippet(b))
			}
			return nil
		},
	}
	return n.opts.deliver(ctx, n.Name(), n.s, func(ctx context.Context) result { return n.opts.doHTTP(ctx, req) })
}

func orNA(s string) string {
	if strings.TrimSpace(s) == "" {
		return "n/a"
	}
	return s
}

// marshal encodes without HTML escaping, so < and > stay readable.
func marshal(v any) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(b.String(), "\n")), nil
}

// eventLines lists a message's registry events, one line each.
func eventLines(m Message) []Line {
	var out []Line
	for _, e := range m.Events {
		l := Line{{Text: e.Name, Bold: true}}
		var meta []string
		if e.Version != "" {
			meta = append(meta, e.Version)
		}
		if e.Quarter != "" {
			meta = append(meta, e.Quarter)
		}
		if e.Timestamp != "" {
			meta = append(meta, e.Timestamp)
		}
		if len(meta) > 0 {
			l = append(l, Span{Text: " (" + strings.Join(meta, ", ") + ")"})
		}
		if len(e.ProofAnchor) >= 16 {
			l = append(l, Span{Text: " proof anchor " + e.ProofAnchor[:16] + "…"})
		}
		out = append(out, l)
	}
	if m.MoreEvents > 0 {
		out = append(out, Line{{Text: fmt.Sprintf("and %d more", m.MoreEvents)}})
	}
	return out
}
