package telemetry

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func seedConfig(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "telemetry_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edit changes the seed config through a generic map.
func edit(t *testing.T, fn func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(seedConfig(t), &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sub(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		m = m[p].(map[string]any)
	}
	return m
}

func TestParseSeedConfig(t *testing.T) {
	c, err := ParseConfig(seedConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the seed config must be valid: %v", err)
	}
	if len(c.Unknown) != 0 {
		t.Errorf("seed keys reported as unknown: %v", c.Unknown)
	}
	th := c.Thresholds
	if !c.Enabled || c.CheckIntervalSeconds != 300 || th.ComplianceScoreMin != 95 || th.ComplianceScoreCritical != 90 ||
		th.ScoreDropWarning != 5 || th.ScoreDropCritical != 10 || th.MaxViolations != 0 {
		t.Errorf("seed values not read: %+v", c)
	}
	n := c.Notifications
	if n.Slack.Channel != "#ssid-governance" || n.Slack.Username != "SSID Governance Bot" || n.Slack.IconEmoji != ":shield:" ||
		n.Discord.Username != "SSID Governance" || n.Webhook.Method != "POST" || n.Webhook.Headers["User-Agent"] != "SSID-Governance-Telemetry/v4.3" ||
		n.Email.SMTPPort != 587 || n.Email.FromAddress != "governance@ssid.local" || !n.Email.UseTLS {
		t.Errorf("channel keys not read: %+v", n)
	}
	f := c.EventFilters
	if !f.NotifyOnRelease || !f.NotifyOnScoreChange || !f.NotifyOnViolation || !f.NotifyOnQuarterlyReport || !f.NotifyOnBlueprintUpdate {
		t.Errorf("filters not read: %+v", f)
	}
	// Additions take their defaults.
	if c.RepeatIntervalSeconds != 14400 || !c.SendResolved || c.BlueprintVersion != "v4.3" || c.ConfigVersion != "1.0.0" {
		t.Errorf("defaults: repeat %d resolved %v", c.RepeatIntervalSeconds, c.SendResolved)
	}
	if len(c.EnabledChannels()) != 0 {
		t.Errorf("seed enables no channel, got %v", c.EnabledChannels())
	}
}

func TestUnknownKeysAreKeptAndListed(t *testing.T) {
	b := edit(t, func(m map[string]any) {
		m["colour_scheme"] = "dark"
		sub(m, "notifications", "slack")["token"] = "x"
		sub(m, "notifications", "email")["password"] = "x"
		sub(m, "thresholds")["compliance_score_minimum"] = 1
		sub(m, "compliance")["anything"] = true // a documentation block: free-form
	})
	c, err := ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	want := "colour_scheme notifications.email.password notifications.slack.token thresholds.compliance_score_minimum"
	if got := strings.Join(c.Unknown, " "); got != want {
		t.Errorf("unknown keys %q, want %q", got, want)
	}
	if c.Notifications.Email.Password != "" {
		t.Error("a password in the file must not be used; SMTP_PASSWORD only")
	}
}

func TestValidateNamesKeyRuleAndValue(t *testing.T) {
	cases := []struct {
		name string
		fn   func(m map[string]any)
		want string
	}{
		{"critical above min", func(m map[string]any) { sub(m, "thresholds")["compliance_score_critical"] = 96 },
			"thresholds.compliance_score_critical: must be below compliance_score_min (96 >= 95)"},
		{"drop order", func(m map[string]any) { sub(m, "thresholds")["score_drop_critical"] = 3 },
			"thresholds.score_drop_critical: must be at least score_drop_warning (3 < 5)"},
		{"score range", func(m map[string]any) { sub(m, "thresholds")["compliance_score_min"] = 120 },
			"thresholds.compliance_score_min: must be between 0 and 100 (120)"},
		{"negative violations", func(m map[string]any) { sub(m, "thresholds")["max_violations"] = -1 },
			"thresholds.max_violations: must be 0 or more (-1)"},
		{"interval", func(m map[string]any) { m["check_interval_seconds"] = 1 },
			"check_interval_seconds: must be at least 10 (1)"},
		{"repeat", func(m map[string]any) { m["repeat_interval_seconds"] = 5 },
			"repeat_interval_seconds: must be at least 60 (5)"},
		{"config version", func(m map[string]any) { m["config_version"] = "2.0.0" },
			`config_version: must be 1.x, the format this ssid-anchor reads ("2.0.0")`},
		{"slack enabled without url", func(m map[string]any) { sub(m, "notifications", "slack")["enabled"] = true },
			"notifications.slack.webhook_url: required when enabled (set it or SLACK_WEBHOOK_URL)"},
		{"webhook method", func(m map[string]any) { sub(m, "notifications", "webhook")["method"] = "GET" },
			`notifications.webhook.method: must be POST, PUT or PATCH ("GET")`},
		{"email port", func(m map[string]any) { sub(m, "notifications", "email")["smtp_port"] = 70000 },
			"notifications.email.smtp_port: must be between 1 and 65535 (70000)"},
		{"icon", func(m map[string]any) { sub(m, "notifications", "slack")["icon_emoji"] = "shield" },
			`notifications.slack.icon_emoji: must look like :name: ("shield")`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig(edit(t, tc.fn))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestParseErrorsNameTheKey(t *testing.T) {
	cases := map[string]string{
		`{"check_interval_seconds": "300"}`:                 "check_interval_seconds: must be a number, got string",
		`{"thresholds": {"max_violations": 0.5}}`:           "thresholds.max_violations: must be a whole number, got 0.5",
		`{"notifications": {"email": {"smtp_port": 1e30}}}`: "notifications.email.smtp_port: 1e30 is out of range",
		`null`: "must hold a JSON object, got null",
		`{"notifications": {"email": {"to_addresses": "a@b"}}}`: "notifications.email.to_addresses: must be a list, got string",
		"{\n  \"enabled\": true,\n  \"thresholds\": {\n}":       "line 4:",
		`[]`:                                   "must hold a JSON object",
		``:                                     "empty file",
		`{"enabled": true} {"enabled": false}`: "text after the JSON object",
		`{"notifications": {"slack": {"enabled": "yes"}}}`: "notifications.slack.enabled: must be true or false, got string",
	}
	for in, want := range cases {
		_, err := ParseConfig([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConfig(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestEnvWinsAndSecretsAreHidden(t *testing.T) {
	b := edit(t, func(m map[string]any) {
		s := sub(m, "notifications", "slack")
		s["enabled"], s["webhook_url"] = true, "https://hooks.slack.com/services/T/B/filesecret"
		w := sub(m, "notifications", "webhook")
		w["enabled"], w["url"], w["secret"] = true, "https://example.org/hook/filewebhooksecret", "hmac-file-secret"
		e := sub(m, "notifications", "email")
		e["enabled"], e["smtp_server"], e["to_addresses"], e["username"] = true, "mail.example.org", []string{"ops@example.org"}, "fileuser"
	})
	c, err := ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		EnvSlackURL: "https://hooks.slack.com/services/T/B/envsecret", EnvDiscordURL: "https://discord.com/api/webhooks/1/discordenvsecret",
		EnvSMTPUsername: "envuser", EnvSMTPPassword: "envpassword",
	}
	c.ApplyEnv(func(k string) string { return env[k] })
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	n := c.Notifications
	if n.Slack.WebhookURL != env[EnvSlackURL] || n.Discord.WebhookURL != env[EnvDiscordURL] || n.Email.Username != "envuser" || n.Email.Password != "envpassword" {
		t.Errorf("env did not win: %+v", n)
	}
	if n.Webhook.URL != "https://example.org/hook/filewebhooksecret" {
		t.Errorf("file value lost without env: %q", n.Webhook.URL)
	}
	shown, _ := json.Marshal(c.Channels())
	for _, secret := range []string{"filesecret", "envsecret", "discordenvsecret", "filewebhooksecret", "hmac-file-secret", "envpassword", "envuser"} {
		if strings.Contains(string(shown), secret) {
			t.Errorf("--check-config view shows %q: %s", secret, shown)
		}
	}
	for _, want := range []string{"https://hooks.slack.com/services/*** (from SLACK_WEBHOOK_URL)", "*** (from SMTP_PASSWORD)", "*** (from SMTP_USERNAME)"} {
		if !strings.Contains(string(shown), want) {
			t.Errorf("view lacks %q: %s", want, shown)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(seedConfig(f))
	f.Add([]byte(`{"thresholds": {"compliance_score_min": 1e400}}`))
	f.Add([]byte(`{"notifications": {"webhook": {"headers": {"X": "a\r\nb"}}}}`))
	f.Add([]byte("\xef\xbb\xbf{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		c.ApplyEnv(func(string) string { return "" })
		if err := c.Validate(); err == nil {
			th := c.Thresholds
			if th.ComplianceScoreCritical >= th.ComplianceScoreMin || th.ScoreDropCritical < th.ScoreDropWarning || c.CheckIntervalSeconds < 10 {
				t.Errorf("accepted inconsistent thresholds %+v", th)
			}
		}
		_ = c.Channels()
	})
}
