package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/telemetry/notify"
)

// Time is a timestamp written as RFC 3339 UTC with Z and whole seconds. It
// reads the seed script's isoformat (microseconds, +00:00) too.
type Time struct{ time.Time }

// At wraps t, dropping sub-second precision.
func At(t time.Time) *Time { return &Time{t.UTC().Truncate(time.Second)} }

// MarshalJSON writes 2006-01-02T15:04:05Z.
func (t Time) MarshalJSON() ([]byte, error) {
	return json.Marshal(t.UTC().Format(time.RFC3339))
}

// UnmarshalJSON accepts RFC 3339 with any offset, and a zone-less ISO time
// as UTC.
func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("timestamp must be a string: %w", err)
	}
	for _, l := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if v, err := time.Parse(l, s); err == nil {
			t.Time = v.UTC()
			return nil
		}
	}
	return fmt.Errorf("timestamp %q is not RFC 3339", s)
}

// AlertState is one alert's lifecycle and delivery record.
type AlertState struct {
	Active    bool   `json:"active"`
	Level     string `json:"level"` // critical, warning, or resolved once cleared
	FirstSeen *Time  `json:"first_seen"`
	// LastSent is when at least one channel last accepted this alert.
	LastSent *Time `json:"last_sent"`
	// DeliveredTo lists the channels that accepted the current notice;
	// the others are retried at each check until they do.
	DeliveredTo []string `json:"delivered_to"`
	// Notice is what is being delivered: started, level_changed, repeat,
	// resolved; empty when nothing is owed.
	Notice      string   `json:"notice,omitempty"`
	NoticeSince *Time    `json:"notice_since,omitempty"`
	Reasons     []string `json:"reasons,omitempty"`
}

// EventNotice is a batch of registry events still owed to some channel.
type EventNotice struct {
	Events      []notify.Event `json:"events"`
	More        int            `json:"more,omitempty"`
	Since       *Time          `json:"since"`
	DeliveredTo []string       `json:"delivered_to"`
}

// LogMark is how far the registry log has been read: the registry cursor
// shared with anchoring (tree.Cursor), stored under registry_log with the
// same keys this type had before (offset, lines, tail_len, tail_sha256,
// last_event), so older state files resume where they were.
type LogMark = tree.Cursor

// HistoryEntry is a reading, recorded when it changes.
type HistoryEntry struct {
	At         *Time   `json:"at"`
	Score      float64 `json:"compliance_score"`
	Violations int     `json:"violations"`
	Quarter    string  `json:"quarter,omitempty"`
	Date       string  `json:"date,omitempty"`
}

// State is telemetry_state.json: the seed's four fields, then ours.
type State struct {
	LastCheck            *Time    `json:"last_check"`
	LastComplianceScore  *float64 `json:"last_compliance_score"`
	LastNotificationSent *Time    `json:"last_notification_sent"`
	// ProcessedEvents are proof anchors of registry events already
	// reported (newest last, bounded).
	ProcessedEvents []string               `json:"processed_events"`
	History         []HistoryEntry         `json:"history"`
	Alerts          map[string]*AlertState `json:"alerts"`
	EventNotices    []*EventNotice         `json:"event_notices,omitempty"`
	RegistryLog     *LogMark               `json:"registry_log,omitempty"`
	// Channels is each channel's last accepted delivery: an alert's
	// last_sent says when that alert went out, and a delivered event notice
	// leaves no trace, so without this a channel that only ever delivered
	// registry event notices would look as if it never delivered anything.
	Channels map[string]*ChannelState `json:"channels,omitempty"`
}

// ChannelState is one channel's delivery record.
type ChannelState struct {
	// LastSent is when the channel last accepted a notice (an alert or
	// registry events).
	LastSent *Time `json:"last_sent"`
}

// Bounds that keep the state file small whatever happens.
const (
	maxHistory         = 200
	maxProcessedEvents = 1000
	maxEventNotices    = 20
	maxListedEvents    = 20
)

// LoadState reads the state file; a missing file is an empty state.
func LoadState(path string) (*State, error) {
	st := &State{}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		st.normalize()
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	return parseState(b, path)
}

// LoadStateIn is LoadState through the governance root, which confines it;
// the monitor and the console read the state with it.
func LoadStateIn(r tree.Root, rel string) (*State, error) {
	b, err := r.ReadFile(rel)
	if errors.Is(err, fs.ErrNotExist) {
		st := &State{}
		st.normalize()
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	return parseState(b, rel)
}

func parseState(b []byte, path string) (*State, error) {
	st := &State{}
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("%s: %w (move it away to start from an empty state)", path, err)
		}
	}
	st.normalize()
	return st, nil
}

func (s *State) normalize() {
	if s.ProcessedEvents == nil {
		s.ProcessedEvents = []string{}
	}
	if s.History == nil {
		s.History = []HistoryEntry{}
	}
	if s.Alerts == nil {
		s.Alerts = map[string]*AlertState{}
	}
	for _, a := range s.Alerts {
		if a.DeliveredTo == nil {
			a.DeliveredTo = []string{}
		}
	}
}

// delivered records that the channels accepted a notice at now.
func (s *State) delivered(now time.Time, channels []string) {
	if s.Channels == nil {
		s.Channels = map[string]*ChannelState{}
	}
	for _, ch := range channels {
		s.Channels[ch] = &ChannelState{LastSent: At(now)}
	}
}

// markProcessed remembers reported proof anchors, newest last.
func (s *State) markProcessed(anchors ...string) {
	s.ProcessedEvents = append(s.ProcessedEvents, anchors...)
	if n := len(s.ProcessedEvents) - maxProcessedEvents; n > 0 {
		s.ProcessedEvents = slices.Delete(s.ProcessedEvents, 0, n)
	}
}

// record appends the reading to the history when it differs from the last
// entry. The first time, the dashboard's previous row is recorded before
// it, so a drop already in the CSV is seen at the first check.
func (s *State) record(now time.Time, d Dashboard) {
	entry := func(r Reading) HistoryEntry {
		return HistoryEntry{At: At(now), Score: r.Score, Violations: r.Violations, Quarter: r.Quarter, Date: r.DateText}
	}
	if len(s.History) == 0 && d.Previous != nil {
		s.History = append(s.History, entry(*d.Previous))
	}
	e := entry(d.Current)
	if n := len(s.History); n > 0 {
		last := s.History[n-1]
		if last.Score == e.Score && last.Violations == e.Violations && last.Date == e.Date && last.Quarter == e.Quarter {
			return
		}
	}
	s.History = append(s.History, e)
	if n := len(s.History) - maxHistory; n > 0 {
		s.History = slices.Delete(s.History, 0, n)
	}
}

// previousScore is the last recorded score that differs from current: a
// drop stays a drop until the score moves again, instead of clearing at
// the next unchanged check.
func (s *State) previousScore(current float64) *float64 {
	for i := len(s.History) - 1; i >= 0; i-- {
		if v := s.History[i].Score; v != current {
			return &v
		}
	}
	return nil
}

// Save writes the state atomically: a temp file in the same directory,
// fsynced, renamed over the old one, and the directory fsynced, so a crash
// leaves either the old or the new state.
func (s *State) Save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return tree.WriteFileAtomic(path, append(b, '\n'), 0o644)
}

// saveIn is Save through the governance root, which confines it.
func (s *State) saveIn(r tree.Root, rel string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return r.WriteFileAtomic(rel, append(b, '\n'), 0o644)
}

// ErrBusy means another check holds the state file.
var ErrBusy = errors.New("another telemetry check is running")

// lockStateIn takes the state directory's lock (through the governance
// root), so a --watch loop and a one-shot check never interleave their
// updates.
func lockStateIn(r tree.Root, rel string) (func(), error) {
	unlock, err := r.LockDir(path.Dir(rel))
	if errors.Is(err, tree.ErrLocked) {
		return nil, fmt.Errorf("%w (%v); wait for it to finish", ErrBusy, err)
	}
	return unlock, err
}
