package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ssid/ssid-anchor/telemetry/notify"
)

// Thresholds are the five alert thresholds of the seed config.
type Thresholds struct {
	ComplianceScoreMin      float64 `json:"compliance_score_min"`
	ComplianceScoreCritical float64 `json:"compliance_score_critical"`
	ScoreDropWarning        float64 `json:"score_drop_warning"`
	ScoreDropCritical       float64 `json:"score_drop_critical"`
	MaxViolations           int     `json:"max_violations"`
	Description             string  `json:"description,omitempty"`
}

// Notifications are the four channels.
type Notifications struct {
	Slack   notify.SlackConfig   `json:"slack"`
	Discord notify.DiscordConfig `json:"discord"`
	Webhook notify.WebhookConfig `json:"webhook"`
	Email   notify.EmailConfig   `json:"email"`
}

// EventFilters say which kinds of news are sent.
type EventFilters struct {
	NotifyOnRelease         bool   `json:"notify_on_release"`
	NotifyOnScoreChange     bool   `json:"notify_on_score_change"`
	NotifyOnViolation       bool   `json:"notify_on_violation"`
	NotifyOnQuarterlyReport bool   `json:"notify_on_quarterly_report"`
	NotifyOnBlueprintUpdate bool   `json:"notify_on_blueprint_update"`
	Description             string `json:"description,omitempty"`
}

// Config is telemetry_config.json. The seed's file is read as is.
type Config struct {
	// BlueprintVersion is shown as "Blueprint Version" when the dashboard
	// CSV has no blueprint_version column (the real one has none).
	BlueprintVersion string `json:"blueprint_version"`
	// ConfigVersion must have major version 1: a later format is refused
	// rather than misread.
	ConfigVersion         string        `json:"config_version"`
	Enabled               bool          `json:"enabled"`
	Description           string        `json:"description,omitempty"`
	CheckIntervalSeconds  int           `json:"check_interval_seconds"`
	RepeatIntervalSeconds int           `json:"repeat_interval_seconds"`
	SendResolved          bool          `json:"send_resolved"`
	Thresholds            Thresholds    `json:"thresholds"`
	Notifications         Notifications `json:"notifications"`
	EventFilters          EventFilters  `json:"event_filters"`
	// Compliance, Documentation and Examples are the seed's documentation
	// blocks: kept as written, no effect on behaviour.
	Compliance    json.RawMessage `json:"compliance,omitempty"`
	Documentation json.RawMessage `json:"documentation,omitempty"`
	Examples      json.RawMessage `json:"examples,omitempty"`

	// Unknown lists keys this version does not know, as dotted paths. They
	// are kept (not an error) and shown by --check-config.
	Unknown []string `json:"-"`
	// Sources says where each secret came from ("file" or the variable).
	Sources map[string]string `json:"-"`
}

// DefaultConfig is what a key that is absent from the file means.
func DefaultConfig() Config {
	return Config{
		BlueprintVersion:      "v4.3",
		ConfigVersion:         "1.0.0",
		Enabled:               true,
		CheckIntervalSeconds:  300,
		RepeatIntervalSeconds: 14400,
		SendResolved:          true,
		Thresholds: Thresholds{
			ComplianceScoreMin: 95, ComplianceScoreCritical: 90,
			ScoreDropWarning: 5, ScoreDropCritical: 10, MaxViolations: 0,
		},
		Notifications: Notifications{
			Slack:   notify.SlackConfig{Channel: "#ssid-governance", Username: "SSID Governance Bot"},
			Discord: notify.DiscordConfig{Username: "SSID Governance"},
			Webhook: notify.WebhookConfig{Method: "POST"},
			Email:   notify.EmailConfig{SMTPPort: 587, UseTLS: true},
		},
		EventFilters: EventFilters{
			NotifyOnRelease: true, NotifyOnScoreChange: true, NotifyOnViolation: true,
			NotifyOnQuarterlyReport: true, NotifyOnBlueprintUpdate: true,
		},
		Sources: map[string]string{},
	}
}

// CheckInterval is check_interval_seconds as a duration.
func (c Config) CheckInterval() time.Duration {
	return time.Duration(c.CheckIntervalSeconds) * time.Second
}

// RepeatInterval is repeat_interval_seconds as a duration.
func (c Config) RepeatInterval() time.Duration {
	return time.Duration(c.RepeatIntervalSeconds) * time.Second
}

// schema lists the known keys; a nil node accepts anything below it.
type schema map[string]schema

var configSchema = schema{
	"blueprint_version": nil, "config_version": nil, "enabled": nil, "description": nil,
	"check_interval_seconds": nil, "repeat_interval_seconds": nil, "send_resolved": nil,
	"thresholds": {
		"compliance_score_min": nil, "compliance_score_critical": nil, "score_drop_warning": nil,
		"score_drop_critical": nil, "max_violations": nil, "description": nil,
	},
	"notifications": {
		"slack":   {"enabled": nil, "webhook_url": nil, "channel": nil, "username": nil, "icon_emoji": nil, "description": nil},
		"discord": {"enabled": nil, "webhook_url": nil, "username": nil, "avatar_url": nil, "description": nil},
		"webhook": {"enabled": nil, "url": nil, "method": nil, "headers": nil, "secret": nil, "description": nil},
		"email": {"enabled": nil, "smtp_server": nil, "smtp_port": nil, "from_address": nil, "to_addresses": nil,
			"use_tls": nil, "username": nil, "description": nil},
	},
	"event_filters": {
		"notify_on_release": nil, "notify_on_score_change": nil, "notify_on_violation": nil,
		"notify_on_quarterly_report": nil, "notify_on_blueprint_update": nil, "description": nil,
	},
	"compliance": nil, "documentation": nil, "examples": nil,
}

// unknownKeys walks raw JSON against s and returns the dotted paths of keys
// s does not list.
func unknownKeys(raw json.RawMessage, s schema, prefix string) []string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return nil
	}
	var out []string
	for k, v := range obj {
		sub, known := s[k]
		switch {
		case !known:
			out = append(out, prefix+k)
		case sub != nil:
			out = append(out, unknownKeys(v, sub, prefix+k+".")...)
		}
	}
	sort.Strings(out)
	return out
}

// ParseConfig reads telemetry_config.json over the defaults. Type and
// syntax errors name the key (or line); unknown keys are listed in
// Config.Unknown, not refused. It does not validate; see Validate.
func ParseConfig(b []byte) (Config, error) {
	c := DefaultConfig()
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(b)) == 0 {
		return c, errors.New("empty file, expected a JSON object")
	}
	if t := bytes.TrimSpace(b); t[0] != '{' {
		var v any
		if json.Unmarshal(t, &v) == nil {
			return c, fmt.Errorf("the file must hold a JSON object, got %s", bytes.TrimSpace(t[:min(len(t), 20)]))
		}
	}
	if key := FirstNull(b); key != "" {
		return c, fmt.Errorf("%s: null is not a value here (remove the key to use its default)", key)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&c); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return c, fmt.Errorf("line %d: %v", lineOf(b, se.Offset), se)
		case errors.As(err, &te) && te.Field != "" && strings.HasPrefix(te.Value, "number") && jsonKind(te.Type.Kind().String()) == "a number":
			return c, fmt.Errorf("%s: %s (line %d)", te.Field, numberProblem(te.Value, te.Type.Kind().String()), lineOf(b, te.Offset))
		case errors.As(err, &te) && te.Field != "":
			return c, fmt.Errorf("%s: must be %s, got %s (line %d)", te.Field, jsonKind(te.Type.Kind().String()), te.Value, lineOf(b, te.Offset))
		case errors.As(err, &te):
			return c, fmt.Errorf("the file must hold a JSON object, got %s", te.Value)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return c, fmt.Errorf("line %d: the file ends inside a JSON value (a missing } or ]?)", lineOf(b, int64(len(b))))
		}
		return c, err
	}
	if dec.More() {
		return c, fmt.Errorf("line %d: text after the JSON object", lineOf(b, dec.InputOffset()))
	}
	c.Unknown = unknownKeys(b, configSchema, "")
	c.Sources = map[string]string{}
	return c, nil
}

// FirstNull names the first key (dotted, sorted) whose value is null:
// encoding/json would skip it silently and keep the default, while the
// file seems to say otherwise. Syntax errors are left to the decoder. The
// appliance config uses it too.
func FirstNull(b []byte) string {
	var doc any
	if json.Unmarshal(b, &doc) != nil {
		return ""
	}
	return firstNullIn(doc)
}

func firstNullIn(doc any) string {
	var walk func(prefix string, v any) string
	walk = func(prefix string, v any) string {
		switch v := v.(type) {
		case nil:
			return prefix
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				if bad := walk(p, v[k]); bad != "" {
					return bad
				}
			}
		case []any:
			for i, e := range v {
				if bad := walk(fmt.Sprintf("%s[%d]", prefix, i), e); bad != "" {
					return bad
				}
			}
		}
		return ""
	}
	return walk("", doc)
}

// numberProblem says why a JSON number did not fit a Go number of kind k:
// too large (out of range) or, for a whole-number key, a fraction.
func numberProblem(value, k string) string {
	v := strings.TrimPrefix(value, "number ")
	if strings.Contains(k, "int") && strings.ContainsAny(v, ".eE") {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f != math.Trunc(f) {
			return "must be a whole number, got " + v
		}
	}
	return v + " is out of range"
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	case "slice":
		return "a list"
	case "map", "struct":
		return "an object"
	}
	return k
}

func lineOf(b []byte, off int64) int {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	if off < 0 {
		off = 0
	}
	return bytes.Count(b[:off], []byte("\n")) + 1
}

// Env variables that override the file's secrets.
const (
	EnvSlackURL     = "SLACK_WEBHOOK_URL"
	EnvDiscordURL   = "DISCORD_WEBHOOK_URL"
	EnvWebhookURL   = "WEBHOOK_URL"
	EnvSMTPUsername = "SMTP_USERNAME"
	EnvSMTPPassword = "SMTP_PASSWORD"
)

// ApplyEnv lets the environment win over the file for secrets. A variable
// that is set but empty is ignored.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if c.Sources == nil {
		c.Sources = map[string]string{}
	}
	set := func(dst *string, key, env string) {
		if v := strings.TrimSpace(getenv(env)); v != "" {
			*dst = v
			c.Sources[key] = env
		} else if *dst != "" {
			c.Sources[key] = "file"
		}
	}
	set(&c.Notifications.Slack.WebhookURL, "notifications.slack.webhook_url", EnvSlackURL)
	set(&c.Notifications.Discord.WebhookURL, "notifications.discord.webhook_url", EnvDiscordURL)
	set(&c.Notifications.Webhook.URL, "notifications.webhook.url", EnvWebhookURL)
	set(&c.Notifications.Email.Username, "notifications.email.username", EnvSMTPUsername)
	set(&c.Notifications.Email.Password, "notifications.email.password", EnvSMTPPassword)
	if c.Notifications.Webhook.Secret != "" {
		c.Sources["notifications.webhook.secret"] = "file"
	}
}

// Validate checks every key once and reports every problem, each naming the
// key, the rule and the value (secrets are never quoted).
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if v := c.ConfigVersion; v != "" && v != "1" && !strings.HasPrefix(v, "1.") {
		add("config_version: must be 1.x, the format this ssid-anchor reads (%q)", v)
	}
	if c.CheckIntervalSeconds < 10 {
		add("check_interval_seconds: must be at least 10 (%d)", c.CheckIntervalSeconds)
	}
	if c.RepeatIntervalSeconds < 60 {
		add("repeat_interval_seconds: must be at least 60 (%d)", c.RepeatIntervalSeconds)
	}
	t := c.Thresholds
	for _, f := range []struct {
		key string
		v   float64
	}{{"compliance_score_min", t.ComplianceScoreMin}, {"compliance_score_critical", t.ComplianceScoreCritical}} {
		if f.v < 0 || f.v > 100 {
			add("thresholds.%s: must be between 0 and 100 (%s)", f.key, num(f.v))
		}
	}
	if t.ComplianceScoreCritical >= t.ComplianceScoreMin {
		add("thresholds.compliance_score_critical: must be below compliance_score_min (%s >= %s)", num(t.ComplianceScoreCritical), num(t.ComplianceScoreMin))
	}
	if t.ScoreDropWarning <= 0 || t.ScoreDropWarning > 100 {
		add("thresholds.score_drop_warning: must be above 0 and at most 100 (%s)", num(t.ScoreDropWarning))
	}
	if t.ScoreDropCritical < t.ScoreDropWarning {
		add("thresholds.score_drop_critical: must be at least score_drop_warning (%s < %s)", num(t.ScoreDropCritical), num(t.ScoreDropWarning))
	}
	if t.ScoreDropCritical > 100 {
		add("thresholds.score_drop_critical: must be at most 100 (%s)", num(t.ScoreDropCritical))
	}
	if t.MaxViolations < 0 {
		add("thresholds.max_violations: must be 0 or more (%d)", t.MaxViolations)
	}
	for name, v := range map[string]interface{ Validate() error }{
		"slack": c.Notifications.Slack, "discord": c.Notifications.Discord,
		"webhook": c.Notifications.Webhook, "email": c.Notifications.Email,
	} {
		if err := v.Validate(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				add("notifications.%s.%s", name, line)
			}
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

// num prints a score without a useless .0.
func num(f float64) string { return fmt.Sprintf("%g", f) }

// EnabledChannels lists the enabled channels in a fixed order.
func (c Config) EnabledChannels() []string {
	var out []string
	n := c.Notifications
	for _, ch := range []struct {
		name string
		on   bool
	}{{"slack", n.Slack.Enabled}, {"discord", n.Discord.Enabled}, {"webhook", n.Webhook.Enabled}, {"email", n.Email.Enabled}} {
		if ch.on {
			out = append(out, ch.name)
		}
	}
	return out
}

// ChannelSummary is one channel as --check-config shows it: secrets
// redacted, their source named.
type ChannelSummary struct {
	Name     string            `json:"name"`
	Enabled  bool              `json:"enabled"`
	Target   string            `json:"target"`
	Settings map[string]string `json:"settings"`
}

func (c Config) source(key string) string {
	if s := c.Sources[key]; s != "" && s != "file" {
		return " (from " + s + ")"
	}
	return ""
}

func secretShown(v string) string {
	if v == "" {
		return "(not set)"
	}
	return "***"
}

// Channels describes the four channels with secrets redacted.
func (c Config) Channels() []ChannelSummary {
	n := c.Notifications
	webhookHeaders := make([]string, 0, len(n.Webhook.Headers))
	for k, v := range n.Webhook.Headers {
		webhookHeaders = append(webhookHeaders, k+": "+notify.RedactHeader(k, v))
	}
	sort.Strings(webhookHeaders)
	email := "(no smtp_server)"
	if n.Email.SMTPServer != "" {
		email = fmt.Sprintf("smtp://%s:%d", n.Email.SMTPServer, n.Email.SMTPPort)
	}
	orNone := func(s string) string {
		if s == "" {
			return "(not set)"
		}
		return s
	}
	return []ChannelSummary{
		{Name: "slack", Enabled: n.Slack.Enabled, Target: orNone(notify.RedactURL(n.Slack.WebhookURL)) + c.source("notifications.slack.webhook_url"),
			Settings: map[string]string{"channel": n.Slack.Channel, "username": n.Slack.Username, "icon_emoji": n.Slack.IconEmoji}},
		{Name: "discord", Enabled: n.Discord.Enabled, Target: orNone(notify.RedactURL(n.Discord.WebhookURL)) + c.source("notifications.discord.webhook_url"),
			Settings: map[string]string{"username": n.Discord.Username, "avatar_url": n.Discord.AvatarURL}},
		{Name: "webhook", Enabled: n.Webhook.Enabled, Target: orNone(notify.RedactURL(n.Webhook.URL)) + c.source("notifications.webhook.url"),
			Settings: map[string]string{"method": orNone(n.Webhook.Method), "headers": strings.Join(webhookHeaders, "; "), "secret": secretShown(n.Webhook.Secret)}},
		{Name: "email", Enabled: n.Email.Enabled, Target: email,
			Settings: map[string]string{
				"from_address": n.Email.FromAddress, "to_addresses": strings.Join(n.Email.ToAddresses, ", "),
				"use_tls": fmt.Sprint(n.Email.UseTLS), "username": secretShown(n.Email.Username) + c.source("notifications.email.username"),
				"password": secretShown(n.Email.Password) + c.source("notifications.email.password"),
			}},
	}
}
