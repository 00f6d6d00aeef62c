package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// DiscordConfig is notifications.discord of the telemetry config.
type DiscordConfig struct {
	Enabled     bool   `json:"enabled"`
	WebhookURL  string `json:"webhook_url"`
	Username    string `json:"username"`
	AvatarURL   string `json:"avatar_url"`
	Description string `json:"description,omitempty"`
}

// Validate names the key and the rule; the URL itself is never quoted.
func (c DiscordConfig) Validate() error {
	var errs []error
	if c.Enabled && c.WebhookURL == "" {
		errs = append(errs, errors.New("webhook_url: required when enabled (set it or DISCORD_WEBHOOK_URL)"))
	}
	if c.WebhookURL != "" {
		if err := validURL(c.WebhookURL); err != nil {
			errs = append(errs, fmt.Errorf("webhook_url: %v (%s)", err, RedactURL(c.WebhookURL)))
		}
	}
	if c.AvatarURL != "" {
		if err := validURL(c.AvatarURL); err != nil {
			errs = append(errs, fmt.Errorf("avatar_url: %v (%q)", err, c.AvatarURL))
		}
	}
	if utf8.RuneCountInString(c.Username) > 80 {
		errs = append(errs, fmt.Errorf("username: must be at most 80 characters (Discord's limit), has %d", utf8.RuneCountInString(c.Username)))
	}
	return errors.Join(errs...)
}

// Discord limits (discord-api-docs, "Embed Limits"); a payload over any of
// them is refused with 400, so the channel trims instead.
const (
	discordContent     = 2000
	discordTitle       = 256
	discordDescription = 4096
	discordFields      = 25
	discordFieldName   = 256
	discordFieldValue  = 1024
	discordFooterText  = 2048
	discordTotal       = 6000
	// discordMinDescription is kept for the description when fields
	// compete with it for the 6000 total.
	discordMinDescription = 500
)

// Discord posts an embed to a Discord webhook, with ?wait=true so Discord
// confirms the message instead of answering 204 to anything.
type Discord struct {
	cfg  DiscordConfig
	opts Options
	s    scrubber
}

// NewDiscord returns the Discord channel.
func NewDiscord(cfg DiscordConfig, opts Options) *Discord {
	return &Discord{cfg: cfg, opts: opts, s: newScrubber(cfg.WebhookURL)}
}

// Name is "discord".
func (*Discord) Name() string { return "discord" }

type discordField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline"`
}

type discordFooter struct {
	Text string `json:"text"`
}

type discordEmbed struct {
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Color       int            `json:"color"`
	Fields      []discordField `json:"fields"`
	Footer      discordFooter  `json:"footer"`
	Timestamp   string         `json:"timestamp"`
}

type discordPayload struct {
	Username  string         `json:"username,omitempty"`
	AvatarURL string         `json:"avatar_url,omitempty"`
	Content   string         `json:"content"`
	Embeds    []discordEmbed `json:"embeds"`
}

// discordEscape keeps Discord from reading _ * ~ ` | > in names (such as
// governance_release_published) as markup.
func discordEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "_", `\_`, "*", `\*`, "~", `\~`, "`", "\\`", "|", `\|`, ">", `\>`).Replace(s)
}

func discordLine(l Line) string {
	var b strings.Builder
	for _, sp := range l {
		t := discordEscape(sp.Text)
		if sp.Bold && strings.TrimSpace(t) != "" {
			b.WriteString("**" + t + "**")
		} else {
			b.WriteString(t)
		}
	}
	return b.String()
}

// trimText trims whitespace (as Discord does) and cuts to n runes; an
// empty result becomes "n/a" because Discord refuses empty values.
func trimText(s string, n int) string {
	s = truncate(strings.TrimSpace(s), n)
	if s == "" {
		return "n/a"
	}
	return s
}

func (n *Discord) embed(m Message) discordEmbed {
	var lines []string
	for _, l := range m.Lines {
		lines = append(lines, discordLine(l))
	}
	for _, l := range eventLines(m) {
		lines = append(lines, discordLine(l))
	}
	e := discordEmbed{
		Title:       trimText(m.Title, discordTitle),
		Description: trimText(strings.Join(lines, "\n"), discordDescription),
		Color:       m.Level.ColorInt(),
		Footer:      discordFooter{Text: trimText(Footer, discordFooterText)},
		Timestamp:   m.Time.UTC().Format(time.RFC3339),
	}
	for i, f := range m.Fields {
		if i == discordFields {
			break
		}
		e.Fields = append(e.Fields, discordField{Name: trimText(f.Name, discordFieldName), Value: trimText(f.Value, discordFieldValue), Inline: true})
	}
	// The sum of all texts may not pass 6000: fields beyond what fits with
	// a short description are dropped, then the description gives way.
	total := utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Footer.Text)
	for i, f := range e.Fields {
		size := utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
		if total+size > discordTotal-discordMinDescription {
			e.Fields = e.Fields[:i]
			break
		}
		total += size
	}
	if room := discordTotal - total; utf8.RuneCountInString(e.Description) > room {
		e.Description = trimText(e.Description, max(room, 1))
	}
	return e
}

func (n *Discord) payload(m Message) ([]byte, error) {
	p := discordPayload{
		Username: n.cfg.Username, AvatarURL: n.cfg.AvatarURL,
		Content: trimText(m.Title, discordContent),
		Embeds:  []discordEmbed{n.embed(m)},
	}
	return marshal(p)
}

// waitURL adds wait=true, so a refused message is an error, not a 204.
func waitURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Set("wait", "true")
	u.RawQuery = q.Encode()
	return u.String()
}

// Preview is the exact request Notify would send.
func (n *Discord) Preview(m Message) (Preview, error) {
	body, err := n.payload(m)
	if err != nil {
		return Preview{}, err
	}
	return Preview{Channel: n.Name(), Method: http.MethodPost, URL: RedactURL(n.cfg.WebhookURL),
		Headers: map[string]string{"Content-Type": "application/json"}, Body: body}, nil
}

// Notify posts m; on 429 it waits Discord's retry_after (or Retry-After).
func (n *Discord) Notify(ctx context.Context, m Message) error {
	body, err := n.payload(m)
	if err != nil {
		return err
	}
	req := httpRequest{
		method: http.MethodPost, url: waitURL(n.cfg.WebhookURL), redacted: RedactURL(n.cfg.WebhookURL), body: body,
		headers: http.Header{"Content-Type": {"application/json"}},
	}
	return n.opts.deliver(ctx, n.Name(), n.s, func(ctx context.Context) result { return n.opts.doHTTP(ctx, req) })
}
