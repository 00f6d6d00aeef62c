package telemetry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/telemetry/notify"
)

// Notifier delivers a message on one channel. *notify.Slack, *notify.Discord,
// *notify.Webhook and *notify.Email satisfy it.
type Notifier interface {
	Notify(ctx context.Context, m notify.Message) error
}

// previewer is a Notifier that can show its exact payload (--dry-run).
type previewer interface {
	Preview(m notify.Message) (notify.Preview, error)
}

// Channel is a named, enabled notifier.
type Channel struct {
	Name     string
	Notifier Notifier
}

// BuildChannels returns the enabled channels of cfg in a fixed order.
// emailTLS may be nil (system roots).
func BuildChannels(cfg Config, opts notify.Options, emailTLS *tls.Config) []Channel {
	n := cfg.Notifications
	var out []Channel
	if n.Slack.Enabled {
		out = append(out, Channel{"slack", notify.NewSlack(n.Slack, opts)})
	}
	if n.Discord.Enabled {
		out = append(out, Channel{"discord", notify.NewDiscord(n.Discord, opts)})
	}
	if n.Webhook.Enabled {
		out = append(out, Channel{"webhook", notify.NewWebhook(n.Webhook, opts)})
	}
	if n.Email.Enabled {
		out = append(out, Channel{"email", notify.NewEmail(n.Email, opts, emailTLS)})
	}
	return out
}

// Paths are the root-relative files a check reads and writes.
type Paths struct {
	// DashboardCSV: the first one that exists is read.
	DashboardCSV []string
	State        string
	EventsLog    string
}

// Monitor runs checks. Every field but ChannelTimeout is required.
type Monitor struct {
	Config   Config
	Root     tree.Root
	Paths    Paths
	Channels []Channel
	Now      func() time.Time
	Log      *slog.Logger
	// ChannelTimeout bounds all deliveries of one channel in one check,
	// retries included (default 2 minutes), so a hanging channel cannot
	// hold up the next check.
	ChannelTimeout time.Duration
}

// Delivery is one message and what each channel did with it.
type Delivery struct {
	Key     string            `json:"key"`
	Kind    notify.Kind       `json:"kind"`
	Level   notify.Level      `json:"level"`
	Title   string            `json:"title"`
	Results map[string]string `json:"results"` // channel → "sent" or the error
}

// Report is what a check found and did.
type Report struct {
	Time       *Time                  `json:"time"`
	DryRun     bool                   `json:"dry_run"`
	Dashboard  *Dashboard             `json:"dashboard,omitempty"`
	Assessment *Assessment            `json:"assessment,omitempty"`
	Root24Lock string                 `json:"root_24_lock"`
	Registry   RegistryReport         `json:"registry"`
	Alerts     map[string]*AlertState `json:"alerts,omitempty"`
	Channels   []string               `json:"channels"`
	Deliveries []Delivery             `json:"deliveries"`
	Previews   []notify.Preview       `json:"previews,omitempty"`
	StateFile  string                 `json:"state_file,omitempty"`
}

// RegistryReport is what the registry log scan found.
type RegistryReport struct {
	Log       string   `json:"log"`
	Mode      string   `json:"mode"`
	Read      int      `json:"events_read"`
	New       int      `json:"new_events"`
	BadBlocks []string `json:"bad_blocks,omitempty"`
}

// Failures lists every channel that failed a due delivery.
func (r *Report) Failures() []string {
	var out []string
	for _, d := range r.Deliveries {
		for _, ch := range sortedKeys(d.Results) {
			if v := d.Results[ch]; v != "sent" {
				out = append(out, fmt.Sprintf("%s: %s", d.Title, v))
			}
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

func (m *Monitor) log() *slog.Logger {
	if m.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Log
}

func (m *Monitor) channelNames() []string {
	out := make([]string, 0, len(m.Channels))
	for _, c := range m.Channels {
		out = append(out, c.Name)
	}
	return out
}

// job is a message owed to some channels.
type job struct {
	key     string
	msg     notify.Message
	targets []string
}

// blueprint is the version shown in messages: the CSV's, else the config's.
func (m *Monitor) blueprint(d *Dashboard) string {
	if d != nil && d.Current.BlueprintVersion != "" {
		return d.Current.BlueprintVersion
	}
	if m.Config.BlueprintVersion != "" {
		return m.Config.BlueprintVersion
	}
	return "unknown"
}

// root24 measures Root-24-LOCK; telemetry never claims it.
func (m *Monitor) root24() string {
	st := tree.CheckRoot24(m.Root)
	if st.Reason != "" {
		m.log().Warn("Root-24-LOCK could not be measured", "reason", st.Reason)
	}
	return st.Status()
}

// readDashboard reads the first dashboard CSV that exists, through the
// governance root (kernel-confined, regular files only).
func (m *Monitor) readDashboard(now time.Time) (*Dashboard, error) {
	for _, rel := range m.Paths.DashboardCSV {
		f, err := m.Root.Open(rel)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("paths.dashboard_csv: %w", err)
		}
		d, err := ReadCSV(f, path.Base(rel), now)
		f.Close()
		if err != nil {
			var ce *CSVError
			if errors.As(err, &ce) {
				ce.File = rel
				return nil, ce
			}
			return nil, err
		}
		d.File = rel
		return &d, nil
	}
	return nil, fmt.Errorf("no dashboard CSV: none of %s exists under %s", strings.Join(m.Paths.DashboardCSV, ", "), m.Root.Dir())
}

// targets are the enabled channels that have not accepted a notice yet.
func (m *Monitor) targets(delivered []string) []string {
	var out []string
	for _, c := range m.Channels {
		if !slices.Contains(delivered, c.Name) {
			out = append(out, c.Name)
		}
	}
	return out
}

// step moves an alert through its lifecycle and says whether a notice is
// owed. level "" means the condition is clear.
func step(st *AlertState, now time.Time, level notify.Level, reasons []string, repeat time.Duration, sendResolved bool) {
	newNotice := func(kind string) {
		st.Notice, st.NoticeSince, st.DeliveredTo = kind, At(now), []string{}
	}
	if level != "" {
		st.Reasons = reasons
		switch {
		case !st.Active:
			st.Active, st.Level, st.FirstSeen, st.LastSent = true, string(level), At(now), nil
			newNotice("started")
		case st.Level != string(level):
			st.Level = string(level)
			newNotice("level_changed")
		case st.LastSent != nil && !now.Before(st.LastSent.Add(repeat)):
			newNotice("repeat")
		}
		return
	}
	if st.Active {
		st.Active, st.Level, st.Reasons = false, string(notify.LevelResolved), nil
		if sendResolved {
			newNotice("resolved")
		} else {
			st.Notice, st.NoticeSince, st.DeliveredTo = "", nil, []string{}
		}
	}
}

// Check runs one check: read the dashboard and the new registry events,
// walk the alerts, deliver what is owed on every channel concurrently, and
// save the state. With dryRun nothing is sent or saved; the report carries
// each channel's payload instead. Delivery failures are in the report
// (Failures), not the error, which is for checks that could not run.
func (m *Monitor) Check(ctx context.Context, dryRun bool) (*Report, error) {
	now := m.Now().UTC().Truncate(time.Second)
	rep := &Report{Time: At(now), DryRun: dryRun, Channels: m.channelNames(), Deliveries: []Delivery{}}
	if err := tree.CheckRelative(m.Paths.State); err != nil {
		return nil, fmt.Errorf("paths.telemetry_state: %w", err)
	}
	rep.StateFile = m.Paths.State
	if !dryRun {
		unlock, err := lockStateIn(m.Root, m.Paths.State)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	st, err := LoadStateIn(m.Root, m.Paths.State)
	if err != nil {
		return nil, fmt.Errorf("paths.telemetry_state: %w", err)
	}
	dash, err := m.readDashboard(now)
	if err != nil {
		return nil, err
	}
	rep.Dashboard = dash
	prev := st.previousScore(dash.Current.Score)
	if len(st.History) == 0 && dash.Previous != nil {
		p := dash.Previous.Score
		prev = &p
	}
	if prev == nil && len(st.History) > 0 {
		// Every earlier reading had this score: stable, not a first.
		p := dash.Current.Score
		prev = &p
	}
	a := Evaluate(m.Config.Thresholds, dash.Current, prev)
	rep.Assessment = &a
	rep.Root24Lock = m.root24()
	f := facts{dash: dash, assessment: &a, root24: rep.Root24Lock, blueprint: m.blueprint(dash), now: now}

	var jobs []job
	repeat := m.Config.RepeatInterval()
	for _, al := range []struct {
		name    string
		on      bool
		level   notify.Level
		reasons []string
	}{
		{AlertScore, m.Config.EventFilters.NotifyOnScoreChange, a.ScoreLevel, a.ScoreReasons},
		{AlertViolations, m.Config.EventFilters.NotifyOnViolation, a.ViolationLevel, a.ViolationReasons},
	} {
		as := st.Alerts[al.name]
		if as == nil {
			as = &AlertState{DeliveredTo: []string{}}
		}
		if !al.on {
			// Filtered out: no lifecycle, nothing owed.
			if as.Active || as.Notice != "" {
				m.log().Info("alert filtered out by event_filters; clearing it", "alert", al.name)
			}
			delete(st.Alerts, al.name)
			continue
		}
		if !as.Active && al.level == "" && as.Notice == "" && as.Level == "" {
			continue // never fired
		}
		step(as, now, al.level, al.reasons, repeat, m.Config.SendResolved)
		st.Alerts[al.name] = as
		if as.Notice == "" {
			continue
		}
		if t := m.targets(as.DeliveredTo); len(t) > 0 {
			jobs = append(jobs, job{key: "alert:" + al.name, msg: compact(f.alertMessage(al.name, as)), targets: t})
		} else if as.Notice == "resolved" {
			as.Notice, as.NoticeSince = "", nil // delivered everywhere
		}
	}

	// Registry events since the last check.
	if m.Paths.EventsLog != "" {
		seen := make(map[string]bool, len(st.ProcessedEvents))
		for _, p := range st.ProcessedEvents {
			seen[p] = true
		}
		lf, err := m.Root.Open(m.Paths.EventsLog)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("paths.events_log: %w", err)
		}
		scan, err := scanOpenedLog(lf, err, m.Paths.EventsLog, st.RegistryLog, now, m.Config.CheckInterval(), m.Config.EventFilters, seen)
		if err != nil {
			return nil, err
		}
		rep.Registry = RegistryReport{Log: m.Paths.EventsLog, Mode: scan.mode, Read: scan.scanned, New: len(scan.news) + scan.more}
		for i, b := range scan.bad {
			if i == 20 {
				rep.Registry.BadBlocks = append(rep.Registry.BadBlocks, fmt.Sprintf("and %d more", len(scan.bad)-i))
				break
			}
			rep.Registry.BadBlocks = append(rep.Registry.BadBlocks, b.String())
		}
		if len(scan.bad) > 0 {
			m.log().Warn("registry log has blocks that are not events; they were skipped", "log", m.Paths.EventsLog, "count", len(scan.bad), "first", scan.bad[0].String())
		}
		if scan.mode == "rewritten" {
			m.log().Warn("registry log no longer matches what was read before (rewritten or truncated); only its recent events are considered", "log", m.Paths.EventsLog)
		}
		st.RegistryLog = scan.mark
		if len(scan.news) > 0 {
			anchors := make([]string, 0, len(scan.news))
			for _, e := range scan.news {
				anchors = append(anchors, e.ProofAnchor)
			}
			st.markProcessed(anchors...)
			if len(m.Channels) == 0 {
				m.log().Info("new registry events, but no channel is enabled", "events", len(scan.news)+scan.more)
			} else {
				st.EventNotices = append(st.EventNotices, &EventNotice{Events: scan.news, More: scan.more, Since: At(now), DeliveredTo: []string{}})
			}
		}
		if n := len(st.EventNotices) - maxEventNotices; n > 0 {
			m.log().Warn("dropping undelivered registry event notices", "count", n)
			st.EventNotices = st.EventNotices[n:]
		}
	}
	for i, n := range st.EventNotices {
		if t := m.targets(n.DeliveredTo); len(t) > 0 {
			jobs = append(jobs, job{key: fmt.Sprintf("events:%d", i), msg: compact(f.eventMessage(n)), targets: t})
		}
	}

	st.record(now, *dash)
	st.LastCheck = At(now)
	sc := dash.Current.Score
	st.LastComplianceScore = &sc
	rep.Alerts = st.Alerts

	if dryRun {
		rep.Previews = m.preview(jobs)
		for _, j := range jobs {
			rep.Deliveries = append(rep.Deliveries, Delivery{Key: j.key, Kind: j.msg.Kind, Level: j.msg.Level, Title: j.msg.Title, Results: map[string]string{}})
		}
		return rep, nil
	}

	results := m.deliver(ctx, jobs)
	for i, j := range jobs {
		d := Delivery{Key: j.key, Kind: j.msg.Kind, Level: j.msg.Level, Title: j.msg.Title, Results: map[string]string{}}
		var accepted []string
		for _, ch := range j.targets {
			if err := results[i][ch]; err != nil {
				d.Results[ch] = err.Error()
			} else {
				d.Results[ch] = "sent"
				accepted = append(accepted, ch)
			}
		}
		rep.Deliveries = append(rep.Deliveries, d)
		if len(accepted) == 0 {
			continue
		}
		st.LastNotificationSent = At(now)
		st.delivered(now, accepted)
		if name, ok := strings.CutPrefix(j.key, "alert:"); ok {
			as := st.Alerts[name]
			as.DeliveredTo = append(as.DeliveredTo, accepted...)
			as.LastSent = At(now)
			if len(m.targets(as.DeliveredTo)) == 0 && as.Notice == "resolved" {
				as.Notice, as.NoticeSince = "", nil
			}
		} else {
			var idx int
			fmt.Sscanf(j.key, "events:%d", &idx)
			st.EventNotices[idx].DeliveredTo = append(st.EventNotices[idx].DeliveredTo, accepted...)
		}
	}
	kept := st.EventNotices[:0]
	for _, n := range st.EventNotices {
		if len(m.targets(n.DeliveredTo)) > 0 {
			kept = append(kept, n)
		}
	}
	st.EventNotices = kept
	// Save even when ctx was cancelled mid-delivery (SIGTERM): what was
	// delivered must not be sent again.
	if err := st.saveIn(m.Root, m.Paths.State); err != nil {
		return rep, fmt.Errorf("saving state %s: %w", m.Paths.State, err)
	}
	return rep, nil
}

// deliver sends the jobs, each channel in its own goroutine so a slow or
// failing one never holds up the others; on one channel, messages go out
// in order. The result is, per job, each target's error (nil = accepted).
func (m *Monitor) deliver(ctx context.Context, jobs []job) []map[string]error {
	out := make([]map[string]error, len(jobs))
	for i := range out {
		out[i] = map[string]error{}
	}
	timeout := m.ChannelTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ch := range m.Channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			for i, j := range jobs {
				if !slices.Contains(j.targets, ch.Name) {
					continue
				}
				var err error
				if cerr := cctx.Err(); cerr != nil {
					err = fmt.Errorf("%s: not sent: %w", ch.Name, cerr)
				} else {
					err = ch.Notifier.Notify(cctx, j.msg)
				}
				if err == nil {
					m.log().Info("notification sent", "channel", ch.Name, "title", j.msg.Title)
				}
				mu.Lock()
				out[i][ch.Name] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

func (m *Monitor) preview(jobs []job) []notify.Preview {
	var out []notify.Preview
	for _, j := range jobs {
		for _, c := range m.Channels {
			if !slices.Contains(j.targets, c.Name) {
				continue
			}
			p, ok := c.Notifier.(previewer)
			if !ok {
				continue
			}
			pv, err := p.Preview(j.msg)
			if err != nil {
				pv = notify.Preview{Channel: c.Name, Mail: "cannot render: " + err.Error()}
			}
			out = append(out, pv)
		}
	}
	return out
}

// Test sends a test message to every channel (or, with dryRun, returns
// the payloads). The dashboard is read if it can be, but a broken or
// missing CSV does not stop the test: the point is the channels. State is
// not touched.
func (m *Monitor) Test(ctx context.Context, dryRun bool) (*Report, error) {
	now := m.Now().UTC().Truncate(time.Second)
	rep := &Report{Time: At(now), DryRun: dryRun, Channels: m.channelNames(), Deliveries: []Delivery{}}
	dash, err := m.readDashboard(now)
	if err != nil {
		m.log().Warn("test message without dashboard figures", "error", err)
		dash = nil
	}
	rep.Dashboard = dash
	rep.Root24Lock = m.root24()
	f := facts{dash: dash, root24: rep.Root24Lock, blueprint: m.blueprint(dash), now: now}
	j := job{key: "test", msg: compact(f.testMessage()), targets: m.channelNames()}
	if dryRun {
		rep.Previews = m.preview([]job{j})
		return rep, nil
	}
	res := m.deliver(ctx, []job{j})
	d := Delivery{Key: j.key, Kind: j.msg.Kind, Level: j.msg.Level, Title: j.msg.Title, Results: map[string]string{}}
	for _, ch := range j.targets {
		if err := res[0][ch]; err != nil {
			d.Results[ch] = err.Error()
		} else {
			d.Results[ch] = "sent"
		}
	}
	rep.Deliveries = append(rep.Deliveries, d)
	return rep, nil
}
