package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
	"github.com/ssid/ssid-anchor/scheduler"
	"github.com/ssid/ssid-anchor/telemetry"
	"github.com/ssid/ssid-anchor/telemetry/notify"
	"github.com/urfave/cli/v2"
)

type telemetryOptions struct {
	Watch, Test, CheckConfig, DryRun bool
}

func newTelemetryCommand(g *globalOptions) *cli.Command {
	var o telemetryOptions
	return &cli.Command{
		Name:  "telemetry",
		Usage: "check compliance telemetry and alert Slack, Discord, a webhook or email",
		Description: `One check reads the dashboard CSV and the registry events added since the last
check, applies the thresholds of telemetry_config.json and sends what is due:
an alert when it starts, changes level, every repeat_interval_seconds while it
lasts, and once when it resolves (send_resolved). Channels run independently; a
channel that failed is retried at the next check. Secrets may come from
SLACK_WEBHOOK_URL, DISCORD_WEBHOOK_URL, WEBHOOK_URL, SMTP_USERNAME and
SMTP_PASSWORD, which win over the file; they are never printed.

  --check-config  validate the config, list unknown keys, show the channels
  --test          send a test message to every enabled channel
  --dry-run       print each channel's exact payload instead of sending
  --watch         check every check_interval_seconds until SIGINT/SIGTERM

Exit codes: 0 done (or telemetry disabled); 1 a channel failed to deliver, or
the dashboard could not be read; 2 invalid config or flags, or --test with no
channel enabled.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "watch", Destination: &o.Watch, Usage: "check every check_interval_seconds until stopped"},
			&cli.BoolFlag{Name: "test", Destination: &o.Test, Usage: "send a test message to every enabled channel"},
			&cli.BoolFlag{Name: "check-config", Destination: &o.CheckConfig, Usage: "validate the telemetry config and show it (secrets hidden)"},
			&cli.BoolFlag{Name: "dry-run", Destination: &o.DryRun, Usage: "print the payloads instead of sending; change no state"},
		},
		Action: func(c *cli.Context) error { return runTelemetry(c.Context, o, g) },
	}
}

func runTelemetry(ctx context.Context, o telemetryOptions, g *globalOptions) error {
	if o.Watch && (o.Test || o.CheckConfig || o.DryRun) {
		return usagef("--watch runs checks until stopped; it cannot be combined with --test, --check-config or --dry-run")
	}
	if o.CheckConfig && (o.Test || o.DryRun) {
		return usagef("--check-config only validates; drop --test and --dry-run")
	}
	s, err := ops.LoadTelemetryConfig(g.opsEnv())
	if err != nil {
		return err
	}
	defer s.Root.Close()
	if o.CheckConfig {
		return runCheckConfig(s, g)
	}
	if s.Invalid != nil {
		return ops.InvalidTelemetryConfig(s.ConfigRel, s.Invalid)
	}
	if !s.Config.Enabled {
		msg := fmt.Sprintf("telemetry is disabled (enabled: false in %s); nothing to do", s.ConfigRel)
		if g.JSON {
			return writeJSON(g.stdout, map[string]any{"enabled": false, "message": msg})
		}
		fmt.Fprintln(g.stdout, msg)
		return nil
	}
	switch {
	case o.Watch:
		return runWatch(ctx, s, g)
	case o.Test:
		m := ops.TelemetryMonitor(g.opsEnv(), s)
		if len(m.Channels) == 0 {
			return usagef("--test: no channel is enabled in %s; set notifications.<slack|discord|webhook|email>.enabled to true", s.ConfigRel)
		}
		rep, err := m.Test(ctx, o.DryRun)
		if err != nil {
			return ops.TelemetryError(err)
		}
		return reportTelemetry(rep, g)
	default:
		rep, err := ops.TelemetryMonitor(g.opsEnv(), s).Check(ctx, o.DryRun)
		if err != nil {
			return ops.TelemetryError(err)
		}
		return reportTelemetry(rep, g)
	}
}

// runWatch checks at once and then every check_interval_seconds until ctx
// ends (SIGINT or SIGTERM), on the same scheduler the daemon uses. Each
// check re-reads the config, so edits apply without a restart (a new
// interval reschedules); an unreadable or invalid new config is logged and
// the previous one kept. A failed check is logged and the watch goes on; a
// clean stop is exit 0.
func runWatch(ctx context.Context, s ops.TelemetrySetup, g *globalOptions) error {
	sched, err := scheduler.New(scheduler.Options{Log: g.log, Clock: g.clock})
	if err != nil {
		return err
	}
	// The first setup's root is the caller's to close; every later one,
	// loaded by a check, is closed here when replaced or when the watch ends.
	first := s.Root
	defer func() {
		if s.Root != first {
			s.Root.Close()
		}
	}()
	interval := s.Config.CheckInterval()
	var check scheduler.Job
	check = func(ctx context.Context) error {
		next, err := ops.LoadTelemetryConfig(g.opsEnv())
		switch {
		case err != nil:
			g.log.Error("telemetry config unreadable; keeping the previous one", "error", err)
		case next.Invalid != nil:
			next.Root.Close()
			g.log.Error("telemetry config invalid; keeping the previous one", "error", strings.ReplaceAll(next.Invalid.Error(), "\n", "; "))
		default:
			if s.Root != first {
				s.Root.Close()
			}
			s = next
		}
		if iv := s.Config.CheckInterval(); iv != interval {
			interval = iv
			g.log.Info("telemetry interval changed", "interval", iv.String())
			if err := sched.Add(jobTelemetry, "@every "+iv.String(), check); err != nil {
				return err
			}
		}
		rep, err := ops.TelemetryMonitor(g.opsEnv(), s).Check(ctx, false)
		if err != nil {
			return err
		}
		if err := reportTelemetryAs(rep, g, true); err != nil {
			g.log.Warn("telemetry check finished with failures; failed channels are retried at the next check")
		}
		return nil
	}
	if err := sched.Add(jobTelemetry, "@every "+interval.String(), check); err != nil {
		return err
	}
	g.log.Info("telemetry watch started", "interval", interval.String(), "channels", strings.Join(s.Config.EnabledChannels(), ","))
	sched.Start()
	sched.Trigger(jobTelemetry)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sched.Stop(sctx)
	g.log.Info("telemetry watch stopped; state saved")
	return nil
}

// telemetryCheck is one check with the current config, as the daemon's
// telemetry job runs it; the report is printed like `telemetry` prints it.
func telemetryCheck(ctx context.Context, g *globalOptions) (*telemetry.Report, error) {
	rep, err := ops.TelemetryCheck(ctx, g.opsEnv())
	if rep == nil || err != nil {
		return rep, err
	}
	return rep, reportTelemetryAs(rep, g, true)
}

func reportTelemetry(rep *telemetry.Report, g *globalOptions) error {
	return reportTelemetryAs(rep, g, false)
}

// reportTelemetryAs prints a check; in a stream (--watch) with --json each
// check is one JSON line.
func reportTelemetryAs(rep *telemetry.Report, g *globalOptions, stream bool) error {
	failures := rep.Failures()
	switch {
	case g.JSON && stream:
		if err := json.NewEncoder(g.stdout).Encode(rep); err != nil {
			return err
		}
	case g.JSON:
		if err := writeJSON(g.stdout, rep); err != nil {
			return err
		}
	default:
		printReport(rep, g)
	}
	if len(failures) > 0 {
		return failure{fmt.Sprintf("%d delivery(ies) failed; failed channels are retried at the next check", len(failures))}
	}
	return nil
}

func printReport(rep *telemetry.Report, g *globalOptions) {
	w := g.stdout
	if d := rep.Dashboard; d != nil {
		trend := ""
		if a := rep.Assessment; a != nil {
			trend = " (" + a.Trend
			if a.Change != nil {
				trend += fmt.Sprintf(", %+g", *a.Change)
			}
			trend += ")"
		}
		fmt.Fprintf(w, "dashboard %s line %d: score %g/100%s, violations %d, quarter %s\n",
			d.File, d.Current.Line, d.Current.Score, trend, d.Current.Violations, orDash(d.Current.Quarter))
	}
	fmt.Fprintf(w, "Root-24-LOCK: %s\n", rep.Root24Lock)
	if r := rep.Registry; r.Log != "" {
		fmt.Fprintf(w, "registry %s: %d events read (%s), %d new to report\n", r.Log, r.Read, r.Mode, r.New)
		for _, b := range r.BadBlocks {
			fmt.Fprintf(w, "  skipped %s\n", b)
		}
	}
	for _, name := range []string{telemetry.AlertScore, telemetry.AlertViolations} {
		if a := rep.Alerts[name]; a != nil && a.Active {
			fmt.Fprintf(w, "alert %s: %s since %s: %s\n", name, a.Level, a.FirstSeen.Format(time.RFC3339), strings.Join(a.Reasons, "; "))
		}
	}
	if len(rep.Channels) == 0 {
		fmt.Fprintln(w, "no channel is enabled; nothing is sent (see telemetry --check-config)")
	}
	if rep.DryRun {
		printPreviews(rep.Previews, g)
		if len(rep.Previews) == 0 {
			fmt.Fprintln(w, "dry run: nothing is due")
		}
		return
	}
	if len(rep.Deliveries) == 0 && len(rep.Channels) > 0 {
		fmt.Fprintln(w, "nothing due")
	}
	for _, d := range rep.Deliveries {
		for _, ch := range sortedKeysOf(d.Results) {
			if r := d.Results[ch]; r == "sent" {
				fmt.Fprintf(w, "%s: sent %q\n", ch, d.Title)
			} else {
				fmt.Fprintf(w, "%s: FAILED %q: %s\n", ch, d.Title, r)
			}
		}
	}
}

func printPreviews(ps []notify.Preview, g *globalOptions) {
	for _, p := range ps {
		if p.Mail != "" {
			fmt.Fprintf(g.stdout, "--- %s via %s\n%s\n", p.Channel, p.Server, p.Mail)
			continue
		}
		fmt.Fprintf(g.stdout, "--- %s: %s %s\n", p.Channel, p.Method, p.URL)
		for _, k := range sortedKeysOf(p.Headers) {
			fmt.Fprintf(g.stdout, "%s: %s\n", k, p.Headers[k])
		}
		// Indent keeps the key order: this is the payload as sent.
		var body bytes.Buffer
		if json.Indent(&body, p.Body, "", "  ") != nil {
			body.Reset()
			body.Write(p.Body)
		}
		fmt.Fprintf(g.stdout, "\n%s\n", body.Bytes())
	}
}

func sortedKeysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// unknownKeyHint explains unknown keys a user is likely to write.
func unknownKeyHint(key string) string {
	switch key {
	case "notifications.email.password":
		return " (ignored: the password is read only from SMTP_PASSWORD)"
	}
	return " (kept, not used)"
}

func runCheckConfig(s ops.TelemetrySetup, g *globalOptions) error {
	c := s.Config
	var problems []string
	if s.Invalid != nil {
		problems = strings.Split(s.Invalid.Error(), "\n")
	}
	if g.JSON {
		doc := map[string]any{
			"file": s.ConfigRel, "valid": s.Invalid == nil, "problems": nonNil(problems), "unknown_keys": nonNil(c.Unknown),
			"enabled": c.Enabled, "config_version": c.ConfigVersion, "blueprint_version": c.BlueprintVersion,
			"check_interval_seconds": c.CheckIntervalSeconds, "repeat_interval_seconds": c.RepeatIntervalSeconds,
			"send_resolved": c.SendResolved, "thresholds": c.Thresholds, "event_filters": c.EventFilters,
			"channels": c.Channels(),
		}
		if err := writeJSON(g.stdout, doc); err != nil {
			return err
		}
	} else {
		w := g.stdout
		fmt.Fprintf(w, "telemetry config %s (config_version %s, blueprint %s)\n", s.ConfigRel, c.ConfigVersion, c.BlueprintVersion)
		fmt.Fprintf(w, "enabled: %v\ncheck every %ds, repeat alerts every %ds, send resolved: %v\n", c.Enabled, c.CheckIntervalSeconds, c.RepeatIntervalSeconds, c.SendResolved)
		t := c.Thresholds
		fmt.Fprintf(w, "thresholds: warning below %g or drop >= %g; critical below %g or drop >= %g or violations > %d\n",
			t.ComplianceScoreMin, t.ScoreDropWarning, t.ComplianceScoreCritical, t.ScoreDropCritical, t.MaxViolations)
		f := c.EventFilters
		fmt.Fprintf(w, "notify on: score change %v, violation %v, release %v, quarterly report %v, blueprint update %v\n",
			f.NotifyOnScoreChange, f.NotifyOnViolation, f.NotifyOnRelease, f.NotifyOnQuarterlyReport, f.NotifyOnBlueprintUpdate)
		for _, ch := range c.Channels() {
			state := "disabled"
			if ch.Enabled {
				state = "ENABLED"
			}
			fmt.Fprintf(w, "  %-8s %-8s %s\n", ch.Name, state, ch.Target)
			for _, k := range sortedKeysOf(ch.Settings) {
				if v := ch.Settings[k]; v != "" {
					fmt.Fprintf(w, "           %s: %s\n", k, v)
				}
			}
		}
		for _, k := range c.Unknown {
			fmt.Fprintf(w, "unknown key: %s%s\n", k, unknownKeyHint(k))
		}
		if s.Invalid == nil {
			fmt.Fprintln(w, "config is valid")
		}
	}
	if s.Invalid != nil {
		return ops.InvalidTelemetryConfig(s.ConfigRel, s.Invalid)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
