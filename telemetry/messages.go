package telemetry

import (
	"fmt"
	"strings"
	"time"

	"github.com/ssid/ssid-anchor/telemetry/notify"
)

// facts are what every message shows about the governance tree now.
type facts struct {
	dash       *Dashboard
	assessment *Assessment
	root24     string
	blueprint  string
	now        time.Time
}

func score(f float64) string { return num(f) + "/100" }

func (f facts) fields() []notify.Field {
	sc, viol := "n/a", "n/a"
	if f.dash != nil {
		sc = score(f.dash.Current.Score)
		viol = fmt.Sprint(f.dash.Current.Violations)
	}
	return []notify.Field{
		{Name: "Compliance Score", Value: sc},
		{Name: "Blueprint Version", Value: f.blueprint},
		{Name: "Root-24-LOCK", Value: f.root24},
		{Name: "Violations", Value: viol},
	}
}

func (f facts) metrics() notify.Metrics {
	m := notify.Metrics{BlueprintVersion: f.blueprint, Root24Lock: f.root24}
	if f.dash != nil {
		c := f.dash.Current
		m.ComplianceScore = &c.Score
		m.Violations = &c.Violations
		m.Quarter, m.Date = c.Quarter, c.DateText
		m.Source = fmt.Sprintf("%s:%d", f.dash.File, c.Line)
	}
	if f.assessment != nil {
		m.PreviousScore, m.Change = f.assessment.Previous, f.assessment.Change
	}
	return m
}

// scoreLine is "Compliance score 88/100 (previous 100/100, change -12)".
func (f facts) scoreLine() notify.Line {
	if f.dash == nil {
		return notify.Line{{Text: "Compliance score: not available"}}
	}
	l := notify.Line{{Text: "Compliance score "}, {Text: score(f.dash.Current.Score), Bold: true}}
	if a := f.assessment; a != nil && a.Previous != nil {
		l = append(l, notify.Span{Text: fmt.Sprintf(" (previous %s, change %+g)", score(*a.Previous), *a.Change)})
	}
	return l
}

func (f facts) rowLine() notify.Line {
	if f.dash == nil {
		return nil
	}
	c := f.dash.Current
	q := ""
	if c.Quarter != "" {
		q = "quarter " + c.Quarter + ", "
	}
	return notify.Line{{Text: fmt.Sprintf("Dashboard: %srow dated %s (%s line %d)", q, c.DateText, f.dash.File, c.Line)}}
}

func (f facts) base(kind notify.Kind, level notify.Level, title string) notify.Message {
	return notify.Message{Kind: kind, Level: level, Title: title, Fields: f.fields(), Metrics: f.metrics(), Time: f.now}
}

func levelTag(l notify.Level) string { return "[" + strings.ToUpper(string(l)) + "]" }

// alertMessage renders a firing or resolved alert.
func (f facts) alertMessage(name string, st *AlertState) notify.Message {
	var subject string
	switch name {
	case AlertScore:
		subject = "SSID compliance score " + score(f.dash.Current.Score)
	default:
		subject = fmt.Sprintf("SSID governance violations: %d", f.dash.Current.Violations)
	}
	if !st.Active {
		m := f.base(notify.KindResolved, notify.LevelResolved, levelTag(notify.LevelResolved)+" "+subject)
		m.Alert = name
		m.Lines = []notify.Line{f.scoreLine(), violationsLine(f.dash), f.rowLine()}
		if st.FirstSeen != nil {
			m.FirstSeen = st.FirstSeen.Time
			m.Lines = append(m.Lines, notify.Line{{Text: fmt.Sprintf("Was firing since %s; cleared at %s.", st.FirstSeen.Format(time.RFC3339), f.now.Format(time.RFC3339))}})
		}
		return m
	}
	level := notify.Level(st.Level)
	title := levelTag(level) + " " + subject
	switch st.Notice {
	case "repeat":
		title += " (still firing)"
	case "level_changed":
		title += " (level changed)"
	}
	m := f.base(notify.KindAlert, level, title)
	m.Alert = name
	m.Reasons = st.Reasons
	m.Repeat = st.Notice == "repeat"
	if st.FirstSeen != nil {
		m.FirstSeen = st.FirstSeen.Time
	}
	m.Lines = []notify.Line{f.scoreLine(), violationsLine(f.dash)}
	for _, r := range st.Reasons {
		m.Lines = append(m.Lines, notify.Line{{Text: "Why: "}, {Text: r, Bold: true}})
	}
	m.Lines = append(m.Lines, f.rowLine())
	if st.FirstSeen != nil {
		m.Lines = append(m.Lines, notify.Line{{Text: "Firing since " + st.FirstSeen.Format(time.RFC3339)}})
	}
	return m
}

func violationsLine(d *Dashboard) notify.Line {
	if d == nil {
		return nil
	}
	return notify.Line{{Text: "Violations: "}, {Text: fmt.Sprint(d.Current.Violations), Bold: true}}
}

// eventMessage announces registry events.
func (f facts) eventMessage(n *EventNotice) notify.Message {
	title := fmt.Sprintf("%s SSID registry: %d new events", levelTag(notify.LevelInfo), len(n.Events)+n.More)
	if len(n.Events) == 1 && n.More == 0 {
		e := n.Events[0]
		title = strings.TrimSpace(fmt.Sprintf("%s SSID registry: %s %s", levelTag(notify.LevelInfo), e.Name, e.Version))
	}
	m := f.base(notify.KindEvent, notify.LevelInfo, title)
	m.Events, m.MoreEvents = n.Events, n.More
	kinds := map[string]bool{}
	for _, e := range n.Events {
		kinds[e.Category] = true
	}
	var what []string
	for _, k := range []string{CategoryRelease, CategoryQuarterlyReport, CategoryBlueprintUpdate} {
		if kinds[k] {
			what = append(what, strings.ReplaceAll(k, "_", " "))
		}
	}
	m.Lines = []notify.Line{{{Text: "New registry events (" + strings.Join(what, ", ") + "):"}}}
	return m
}

// testMessage is sent by --test.
func (f facts) testMessage() notify.Message {
	m := f.base(notify.KindTest, notify.LevelInfo, "[TEST] SSID telemetry test message")
	m.Lines = []notify.Line{
		{{Text: "This is a test from "}, {Text: "ssid-anchor telemetry --test", Bold: true}, {Text: "; this channel is set up correctly."}},
		f.scoreLine(),
	}
	if r := f.rowLine(); r != nil {
		m.Lines = append(m.Lines, r)
	}
	return m
}

// compact drops nil lines.
func compact(m notify.Message) notify.Message {
	out := m.Lines[:0]
	for _, l := range m.Lines {
		if len(l) > 0 {
			out = append(out, l)
		}
	}
	m.Lines = out
	return m
}
