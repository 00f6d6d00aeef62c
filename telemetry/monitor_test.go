package telemetry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/telemetry/notify"
)

// fakeChannel records what it is asked to deliver; it can fail or hang.
type fakeChannel struct {
	mu   sync.Mutex
	got  []notify.Message
	at   []time.Time
	fail int  // fail the next n deliveries
	hang bool // block until the context ends
}

func (f *fakeChannel) Notify(ctx context.Context, m notify.Message) error {
	f.mu.Lock()
	hang := f.hang
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return fmt.Errorf("fake: %w", ctx.Err())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return errors.New("fake: 503 Service Unavailable")
	}
	f.got = append(f.got, m)
	f.at = append(f.at, time.Now())
	return nil
}

// take returns and forgets what was delivered.
func (f *fakeChannel) take() []notify.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.got
	f.got = nil
	return out
}

type harness struct {
	t     *testing.T
	root  string
	now   time.Time
	mon   *Monitor
	a, b  *fakeChannel
	paths tree.Paths
}

// newHarness builds a governance tree that holds Root-24-LOCK, the seed
// config (edited by fn), the real registry log and a one-row dashboard;
// the clock is fake and starts on 2026-03-01.
func newHarness(t *testing.T, fn func(c *Config)) *harness {
	t.Helper()
	root := t.TempDir()
	names := map[int]string{5: "05_documentation", 7: "07_governance_legal", 23: "23_compliance", 24: "24_meta_orchestration"}
	for i := 1; i <= 24; i++ {
		name := names[i]
		if name == "" {
			name = fmt.Sprintf("%02d_module", i)
		}
		if err := os.Mkdir(filepath.Join(root, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{t: t, root: root, now: day("2026-03-01T00:00:00Z"), a: &fakeChannel{}, b: &fakeChannel{}, paths: tree.DefaultPaths()}
	h.write(tree.RootExceptionsPath, "# no exceptions\n")
	h.write(h.paths.EventsLog, string(must(os.ReadFile("testdata/registry_events.log"))))
	cfg, err := ParseConfig(seedConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if fn != nil {
		fn(&cfg)
	}
	r, err := tree.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	h.mon = &Monitor{
		Config: cfg, Root: r,
		Paths:    Paths{DashboardCSV: h.paths.DashboardCSV, State: h.paths.TelemetryState, EventsLog: h.paths.EventsLog},
		Channels: []Channel{{"slack", h.a}, {"email", h.b}},
		Now:      func() time.Time { return h.now },
	}
	h.setRow(100, 0)
	return h
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func (h *harness) write(rel, body string) {
	h.t.Helper()
	p := filepath.Join(h.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// setRow edits the dashboard's only row in place, as an operator would.
func (h *harness) setRow(score float64, violations int) {
	h.write(h.paths.DashboardCSV[0], fmt.Sprintf("quarter,date,compliance_score,violations,commits,proof_anchors,hash_valid,root24_status\n2026-Q1,2026-01-01,%g,%d,10,x,true,PASS\n", score, violations))
}

func (h *harness) check() *Report {
	h.t.Helper()
	rep, err := h.mon.Check(context.Background(), false)
	if err != nil {
		h.t.Fatal(err)
	}
	return rep
}

func (h *harness) state() *State {
	h.t.Helper()
	return must(LoadState(filepath.Join(h.root, h.paths.TelemetryState)))
}

// expect checks what channel a received since the last call: the titles'
// level tags, in order ("" for nothing).
func (h *harness) expect(step string, want ...string) []notify.Message {
	h.t.Helper()
	got := h.a.take()
	h.b.take()
	var tags []string
	for _, m := range got {
		tags = append(tags, fmt.Sprintf("%s/%s", m.Kind, m.Level))
	}
	if strings.Join(tags, " ") != strings.Join(want, " ") {
		h.t.Errorf("%s: sent %v, want %v", step, tags, want)
		for _, m := range got {
			h.t.Logf("  %s", m.Title)
		}
	}
	return got
}

func TestAlertLifecycle(t *testing.T) {
	h := newHarness(t, nil)
	h.check()
	h.expect("first check at 100")

	h.now = h.now.Add(5 * time.Minute)
	h.setRow(88, 0)
	rep := h.check()
	got := h.expect("drop 100 → 88", "alert/critical")
	if len(got) == 1 {
		m := got[0]
		if !strings.Contains(m.Title, "88/100") || m.Repeat || len(m.Reasons) != 2 ||
			!strings.Contains(strings.Join(m.Reasons, ";"), "score dropped by 12 from 100 (score_drop_critical 10)") {
			t.Errorf("alert message %q reasons %v", m.Title, m.Reasons)
		}
		if f := m.Fields; len(f) != 4 || f[2].Value != "active" || f[1].Value != "v4.3" {
			t.Errorf("fields %v: Root-24-LOCK must be measured, blueprint from config", f)
		}
	}
	if a := rep.Assessment; a.Change == nil || *a.Change != -12 || a.Trend != "declining" {
		t.Errorf("assessment %+v", a)
	}
	fired := h.now

	for i := 1; i <= 47; i++ { // every 5 minutes until just before 4 h
		h.now = h.now.Add(5 * time.Minute)
		h.check()
	}
	h.expect("unchanged within repeat_interval")

	h.now = fired.Add(4 * time.Hour)
	got = h.expect("nothing yet")
	h.check()
	got = h.expect("repeat after 4 h", "alert/critical")
	if len(got) == 1 && (!got[0].Repeat || !strings.Contains(got[0].Title, "still firing")) {
		t.Errorf("repeat message %q repeat=%v", got[0].Title, got[0].Repeat)
	}

	h.now = h.now.Add(5 * time.Minute)
	h.setRow(100, 0)
	h.check()
	got = h.expect("back to 100", "resolved/resolved")
	if len(got) == 1 && !strings.Contains(got[0].Title, "[RESOLVED]") {
		t.Errorf("resolved title %q", got[0].Title)
	}
	for range 3 {
		h.now = h.now.Add(5 * time.Hour)
		h.check()
	}
	h.expect("after resolve: silence")

	st := h.state()
	as := st.Alerts[AlertScore]
	if as == nil || as.Active || as.Level != "resolved" || as.Notice != "" || as.FirstSeen == nil {
		t.Errorf("alert state %+v", as)
	}
	if st.LastNotificationSent == nil || st.LastCheck == nil || st.LastComplianceScore == nil || *st.LastComplianceScore != 100 {
		t.Errorf("seed fields not kept: %+v", st)
	}
}

func TestViolationsAboveMaxAreCritical(t *testing.T) {
	h := newHarness(t, nil)
	h.check()
	h.now = h.now.Add(5 * time.Minute)
	h.setRow(100, 2)
	h.check()
	got := h.expect("2 violations", "alert/critical")
	if len(got) == 1 && (got[0].Alert != AlertViolations || !strings.Contains(got[0].Reasons[0], "2 violations exceed max_violations 0")) {
		t.Errorf("message %+v", got[0])
	}
	h.now = h.now.Add(5 * time.Minute)
	h.setRow(100, 0)
	h.check()
	h.expect("violations cleared", "resolved/resolved")
}

func TestBelowMinimumForDaysRepeats(t *testing.T) {
	h := newHarness(t, nil)
	h.setRow(93, 0) // below compliance_score_min 95, above critical 90
	h.check()
	got := h.expect("first check below minimum", "alert/warning")
	if len(got) == 1 && !strings.Contains(got[0].Reasons[0], "below compliance_score_min 95") {
		t.Errorf("reasons %v", got[0].Reasons)
	}
	n := 0
	for range 3 * 24 * 2 { // three days of half-hourly checks
		h.now = h.now.Add(30 * time.Minute)
		h.check()
		for _, m := range h.a.take() {
			if m.Kind != notify.KindAlert || m.Level != notify.LevelWarning || !m.Repeat {
				t.Errorf("unexpected %s/%s repeat=%v", m.Kind, m.Level, m.Repeat)
			}
			n++
		}
	}
	if n != 18 { // 72 h / 4 h
		t.Errorf("%d repeats in three days, want 18 (one per repeat_interval_seconds)", n)
	}
}

func TestLevelChangeIsSent(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Thresholds.ScoreDropWarning, c.Thresholds.ScoreDropCritical = 50, 60 })
	h.setRow(93, 0)
	h.check()
	h.expect("warning", "alert/warning")
	h.now = h.now.Add(5 * time.Minute)
	h.setRow(85, 0)
	h.check()
	got := h.expect("warning → critical", "alert/critical")
	if len(got) == 1 && !strings.Contains(got[0].Title, "level changed") {
		t.Errorf("title %q", got[0].Title)
	}
	h.now = h.now.Add(5 * time.Minute)
	h.setRow(93, 0)
	h.check()
	h.expect("critical → warning", "alert/warning")
}

func TestSendResolvedFalse(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SendResolved = false })
	h.setRow(80, 0)
	h.check()
	h.expect("critical", "alert/critical")
	h.now = h.now.Add(5 * time.Minute)
	h.setRow(100, 0)
	h.check()
	h.expect("resolved, but send_resolved is false")
	if as := h.state().Alerts[AlertScore]; as.Active || as.Notice != "" {
		t.Errorf("alert still owed: %+v", as)
	}
}

func TestScoreFilterOff(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.EventFilters.NotifyOnScoreChange = false })
	h.setRow(50, 3)
	h.check()
	got := h.expect("only the violation alert", "alert/critical")
	if len(got) == 1 && got[0].Alert != AlertViolations {
		t.Errorf("alert %q sent although notify_on_score_change is false", got[0].Alert)
	}
}

func TestFailedChannelIsRetriedAtNextCheck(t *testing.T) {
	h := newHarness(t, nil)
	h.check()
	h.now = h.now.Add(5 * time.Minute)
	h.setRow(80, 0)
	h.b.fail = 1
	rep := h.check()
	if f := rep.Failures(); len(f) != 1 || !strings.Contains(f[0], "503") {
		t.Errorf("failures %v", f)
	}
	if len(h.a.take()) != 1 || len(h.b.take()) != 0 {
		t.Fatal("first delivery: slack should have it, email not")
	}
	st := h.state()
	if as := st.Alerts[AlertScore]; strings.Join(as.DeliveredTo, ",") != "slack" || as.LastSent == nil {
		t.Errorf("delivered_to %v", as.DeliveredTo)
	}
	if st.LastNotificationSent == nil || !st.LastNotificationSent.Equal(h.now) {
		t.Errorf("last_notification_sent %v; one channel accepted, so it must move", st.LastNotificationSent)
	}
	h.now = h.now.Add(5 * time.Minute)
	rep = h.check()
	if len(h.a.take()) != 0 {
		t.Error("slack got the alert twice")
	}
	if got := h.b.take(); len(got) != 1 || got[0].Level != notify.LevelCritical {
		t.Errorf("email retry: %v", got)
	}
	if len(rep.Failures()) != 0 {
		t.Errorf("failures %v", rep.Failures())
	}
	if as := h.state().Alerts[AlertScore]; strings.Join(as.DeliveredTo, ",") != "slack,email" {
		t.Errorf("delivered_to %v", as.DeliveredTo)
	}
}

func TestNothingAcceptedKeepsLastNotificationSent(t *testing.T) {
	h := newHarness(t, nil)
	h.setRow(80, 0)
	h.a.fail, h.b.fail = 1, 1
	rep := h.check()
	if len(rep.Failures()) != 2 {
		t.Errorf("failures %v", rep.Failures())
	}
	st := h.state()
	if st.LastNotificationSent != nil || st.Alerts[AlertScore].LastSent != nil {
		t.Errorf("last_notification_sent moved although no channel accepted: %v", st.LastNotificationSent)
	}
	h.now = h.now.Add(5 * time.Minute)
	h.check()
	if len(h.a.take()) != 1 || len(h.b.take()) != 1 {
		t.Error("both channels must be retried at the next check")
	}
}

func TestHangingChannelDoesNotBlockOthers(t *testing.T) {
	h := newHarness(t, nil)
	h.b.hang = true
	h.mon.ChannelTimeout = 500 * time.Millisecond
	h.setRow(80, 0)
	start := time.Now()
	rep := h.check()
	took := time.Since(start)
	if len(h.a.at) != 1 || h.a.at[0].Sub(start) > 400*time.Millisecond {
		t.Errorf("slack waited for the hanging channel: %v", h.a.at)
	}
	if took < 500*time.Millisecond || took > 10*time.Second {
		t.Errorf("check took %s; the hanging channel must end at its 500ms budget", took)
	}
	if f := rep.Failures(); len(f) != 1 || !strings.Contains(f[0], "deadline exceeded") {
		t.Errorf("failures %v", f)
	}
}

func (h *harness) appendEvent(name, version string, at time.Time) string {
	h.t.Helper()
	pa, err := tree.AppendEvent(filepath.Join(h.root, h.paths.EventsLog), tree.NewEvent{
		Timestamp: at.Format(time.RFC3339), Event: name, Version: version, CommitHash: "abc1234", Blueprint: "v4.3",
		Root24Lock: "active", ComplianceScore: "100/100", EmittedBy: "test"})
	if err != nil {
		h.t.Fatal(err)
	}
	return pa
}

func TestRegistryEventsSinceLastCheck(t *testing.T) {
	h := newHarness(t, nil)
	rep := h.check()
	h.expect("first check: the log's history is not re-announced")
	if rep.Registry.Mode != "new" || rep.Registry.Read != 12 || rep.Registry.New != 0 {
		t.Errorf("registry %+v", rep.Registry)
	}

	h.now = h.now.Add(5 * time.Minute)
	pa := h.appendEvent("governance_release_published", "v4.3.0", h.now.Add(-time.Minute))
	h.appendEvent("governance_dashboard_added", "v4.3.0", h.now) // not news
	rep = h.check()
	got := h.expect("release", "event/info")
	if rep.Registry.Mode != "appended" || rep.Registry.Read != 2 {
		t.Errorf("only the appended events must be read: %+v", rep.Registry)
	}
	if len(got) == 1 {
		e := got[0].Events
		if len(e) != 1 || e[0].Name != "governance_release_published" || e[0].ProofAnchor != pa || e[0].Category != CategoryRelease || e[0].Line != 122 {
			t.Errorf("events %+v", e)
		}
	}
	if st := h.state(); st.ProcessedEvents[len(st.ProcessedEvents)-1] != pa {
		t.Errorf("processed_events %v", st.ProcessedEvents)
	}

	h.now = h.now.Add(5 * time.Minute)
	h.check()
	h.expect("nothing new")

	// A JSONL writer, and a quarterly audit.
	h.now = h.now.Add(5 * time.Minute)
	f := must(os.OpenFile(filepath.Join(h.root, h.paths.EventsLog), os.O_APPEND|os.O_WRONLY, 0))
	fmt.Fprintf(f, `{"timestamp":"%s","event":"blueprint_v4.6_tagged","version":"v4.6.0"}`+"\n", h.now.Format(time.RFC3339))
	fmt.Fprintf(f, `{"timestamp":"%s","event":"automated_quarterly_audit","version":"v4.6.0","details":{"nested":{"ok":true}}}`+"\n", h.now.Format(time.RFC3339))
	f.Close()
	h.check()
	got = h.expect("jsonl events", "event/info")
	if len(got) == 1 && (len(got[0].Events) != 2 || got[0].Events[0].Category != CategoryBlueprintUpdate || got[0].Events[1].Category != CategoryQuarterlyReport) {
		t.Errorf("events %+v", got[0].Events)
	}
}

// TestChannelLastSent: each channel's last accepted delivery is kept in the
// state, whatever the notice (an event notice leaves the state once
// delivered, so it must be recorded here), and a channel that refused keeps
// its earlier time.
func TestChannelLastSent(t *testing.T) {
	h := newHarness(t, nil)
	h.check()
	if st := h.state(); len(st.Channels) != 0 {
		t.Fatalf("channels %v before any delivery", st.Channels)
	}
	h.now = h.now.Add(5 * time.Minute)
	first := h.now
	h.appendEvent("governance_release_published", "v4.3.0", h.now)
	h.check()
	h.expect("release", "event/info")
	st := h.state()
	if len(st.EventNotices) != 0 || len(st.Alerts) != 0 {
		t.Fatalf("the delivered notice is still owed: %+v %+v", st.EventNotices, st.Alerts)
	}
	for _, ch := range []string{"slack", "email"} {
		if c := st.Channels[ch]; c == nil || c.LastSent == nil || !c.LastSent.Equal(first) {
			t.Errorf("channels[%s] = %+v, want last_sent %s", ch, c, first)
		}
	}

	h.now = h.now.Add(5 * time.Minute)
	h.setRow(80, 0)
	h.b.fail = 1
	h.check()
	st = h.state()
	if c := st.Channels["slack"]; c == nil || !c.LastSent.Equal(h.now) {
		t.Errorf("slack accepted the alert at %s: %+v", h.now, c)
	}
	if c := st.Channels["email"]; c == nil || !c.LastSent.Equal(first) {
		t.Errorf("email refused the alert, so its last delivery stays %s: %+v", first, c)
	}
	raw := string(must(os.ReadFile(filepath.Join(h.root, h.paths.TelemetryState))))
	if !strings.Contains(raw, `"channels": {`) || !strings.Contains(raw, `"last_sent": "`+first.Format(time.RFC3339)+`"`) {
		t.Errorf("state file lacks channels.*.last_sent:\n%s", raw)
	}
}

func TestEventFilters(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.EventFilters.NotifyOnRelease = false })
	h.check()
	h.now = h.now.Add(5 * time.Minute)
	h.appendEvent("governance_release_published", "v4.3.0", h.now)
	h.appendEvent("blueprint_tagged", "v4.4.0", h.now)
	h.check()
	got := h.expect("release filtered, blueprint kept", "event/info")
	if len(got) == 1 && (len(got[0].Events) != 1 || got[0].Events[0].Name != "blueprint_tagged") {
		t.Errorf("events %+v", got[0].Events)
	}
}

func TestFirstCheckReportsRecentEvents(t *testing.T) {
	// A CI job appends the release event and runs telemetry with no state.
	h := newHarness(t, nil)
	h.appendEvent("governance_release_published", "v4.3.0", h.now.Add(-2*time.Minute))
	h.check()
	h.expect("release just before the first check", "event/info")
}

func TestRewrittenLog(t *testing.T) {
	h := newHarness(t, nil)
	h.check()
	h.now = h.now.Add(time.Hour)
	// Replace the log: an old release (not news any more) and a fresh one.
	h.write(h.paths.EventsLog, "Registry events initialized.\n")
	h.appendEvent("governance_release_published", "v4.2.0", h.now.Add(-48*time.Hour))
	h.appendEvent("governance_release_published", "v4.3.0", h.now.Add(-time.Minute))
	rep := h.check()
	got := h.expect("rewritten", "event/info")
	if rep.Registry.Mode != "rewritten" {
		t.Errorf("mode %q", rep.Registry.Mode)
	}
	if len(got) == 1 && (len(got[0].Events) != 1 || got[0].Events[0].Version != "v4.3.0") {
		t.Errorf("events %+v", got[0].Events)
	}
}

func TestBadBlocksAreReported(t *testing.T) {
	h := newHarness(t, nil)
	h.check()
	f := must(os.OpenFile(filepath.Join(h.root, h.paths.EventsLog), os.O_APPEND|os.O_WRONLY, 0))
	f.WriteString("{\n  \"event\": broken\n}\n")
	f.Close()
	rep := h.check()
	if len(rep.Registry.BadBlocks) != 1 || !strings.Contains(rep.Registry.BadBlocks[0], "lines 122-124") {
		t.Errorf("bad blocks %v", rep.Registry.BadBlocks)
	}
}

func TestDryRunSendsAndSavesNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.check()
	statePath := filepath.Join(h.root, h.paths.TelemetryState)
	before := must(os.ReadFile(statePath))
	h.mon.Channels = append(h.mon.Channels, Channel{"webhook", notify.NewWebhook(notify.WebhookConfig{
		Enabled: true, URL: "http://127.0.0.1:1/hook/dry-run-secret", Secret: "k"}, notify.Options{})})
	h.now = h.now.Add(5 * time.Minute)
	h.setRow(80, 0)
	rep, err := h.mon.Check(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.a.take()) != 0 {
		t.Error("dry run delivered")
	}
	if len(rep.Previews) != 1 || rep.Previews[0].Channel != "webhook" || !bytes.Contains(rep.Previews[0].Body, []byte(`"level":"critical"`)) {
		t.Errorf("previews %+v", rep.Previews)
	}
	if strings.Contains(rep.Previews[0].URL, "dry-run-secret") {
		t.Errorf("preview URL %q", rep.Previews[0].URL)
	}
	if after := must(os.ReadFile(statePath)); !bytes.Equal(before, after) {
		t.Error("dry run changed the state file")
	}
}

func TestStateFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "telemetry_state.json")
	// The seed script's shape: isoformat with microseconds and +00:00.
	seed := `{"last_check": "2025-10-11T19:53:01.123456+00:00", "last_compliance_score": 97, "last_notification_sent": null, "processed_events": []}`
	if err := os.WriteFile(p, []byte(seed), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := LoadState(p)
	if err != nil {
		t.Fatal(err)
	}
	if !st.LastCheck.Equal(day("2025-10-11T19:53:01.123456Z")) || *st.LastComplianceScore != 97 {
		t.Errorf("seed state misread: %+v", st)
	}
	for i := range maxProcessedEvents + 50 {
		st.markProcessed(fmt.Sprintf("%064x", i))
	}
	st.LastCheck = At(st.LastCheck.Time)
	if err := st.Save(p); err != nil {
		t.Fatal(err)
	}
	b := string(must(os.ReadFile(p)))
	if !strings.Contains(b, `"last_check": "2025-10-11T19:53:01Z"`) || !strings.Contains(b, `"last_notification_sent": null`) {
		t.Errorf("timestamps not RFC 3339 Z:\n%.300s", b)
	}
	again := must(LoadState(p))
	if len(again.ProcessedEvents) != maxProcessedEvents || again.ProcessedEvents[0] != fmt.Sprintf("%064x", 50) {
		t.Errorf("processed_events not bounded to the newest %d", maxProcessedEvents)
	}
	if ents := must(os.ReadDir(dir)); len(ents) != 1 {
		t.Errorf("temp files left behind: %v", ents)
	}
	if err := os.WriteFile(p, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadState(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("corrupt state: %v", err)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	h := newHarness(t, nil)
	for i := range maxHistory + 30 {
		h.setRow(float64(95+i%2), 0)
		h.now = h.now.Add(time.Minute)
		h.check()
	}
	if n := len(h.state().History); n != maxHistory {
		t.Errorf("history has %d entries, want %d", n, maxHistory)
	}
}

func TestOutsideRootRefused(t *testing.T) {
	h := newHarness(t, nil)
	h.mon.Paths.DashboardCSV = []string{"../../etc/passwd"}
	if _, err := h.mon.Check(context.Background(), false); !errors.Is(err, tree.ErrOutsideRoot) {
		t.Errorf("err = %v, want a refusal", err)
	}
}
