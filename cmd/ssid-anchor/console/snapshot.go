package console

import (
	"context"
	"errors"
	"time"

	"github.com/ssid/ssid-anchor/anchor"
)

// Source is what the console reads: a snapshot of the box's state for each
// page view, and the one action it can start.
type Source interface {
	// Snapshot reads the current state. An error means nothing could be
	// read at all; partial problems go in the snapshot's Problem fields so
	// the rest of the page still shows.
	Snapshot(ctx context.Context) (*Snapshot, error)
	// VerifyNow runs a verification of every record and keeps its result
	// for the next snapshots. Mismatches are results, not errors; an error
	// means verification could not run (ErrBusy when one is running).
	VerifyNow(ctx context.Context) error
}

// ErrBusy is returned by VerifyNow while another verification runs.
var ErrBusy = errors.New("a verification is already running")

// Snapshot is plain data: everything one page view shows.
type Snapshot struct {
	Node Node
	// ManifestPath is the manifest's path relative to the root.
	ManifestPath string
	// ManifestProblem says why the manifest could not be read ("" if it
	// was, or if it does not exist yet).
	ManifestProblem string
	// Records are the manifest's anchor records in file order (anchoring
	// only appends, so later records are newer).
	Records []anchor.Record
	// RepoPinned says which records' CIDs (by their string form) the
	// node's repo pins, from its pin set; nil when it could not be read,
	// and then PinsProblem says why and each record's own flag is shown.
	RepoPinned  map[string]bool
	PinsProblem string
	// Chain is the manifest hash chain, newest (the head) first.
	Chain []ManifestLink
	// ChainNote explains an incomplete chain ("older manifests not
	// shown", or why a link could not be read).
	ChainNote string
	// Verify is the last verification, nil when none ran.
	Verify *VerifyRun
	// VerifyProblem says why the kept last verification could not be read.
	VerifyProblem string
	Telemetry     Telemetry
	// Jobs are the scheduler's jobs; nil outside the daemon.
	Jobs []Job
	// RemoteServices names the configured remote pinning services.
	RemoteServices []string
	// RemotePins are the remote pin requests, one per record and service.
	RemotePins []RemotePin
}

// pinned says whether r's CID is pinned in the repo (its pin set), or
// what the record says when the pin set is unknown.
func (s *Snapshot) pinned(r *anchor.Record) bool {
	if s.RepoPinned == nil {
		return r.Pinned
	}
	return s.RepoPinned[r.IPFSCID]
}

// Node is the header: who this box is and how it stands.
type Node struct {
	PeerID         string
	Profile        string
	ConnectedPeers int
	// IPNSName is /ipns/<key> once the head manifest is published; "" if
	// not (the air-gapped profile never publishes).
	IPNSName string
	// Started is when the daemon started; zero when not known.
	Started time.Time
	// Root24Lock is "active", "violated" or "unknown" (tree.CheckRoot24's
	// verdict, as guard shows it); Root24Problems says why.
	Root24Lock     string
	Root24Problems []string
}

// ManifestLink is one manifest of the chain.
type ManifestLink struct {
	CID         string
	LastUpdated string
	Records     int
	// Signer is the peer ID that signed it; "" when unsigned.
	Signer string
}

// VerifyRun is one verification: when, how long, and what it found in
// the compact form the daemon keeps in its repo across restarts
// (MarshalVerifyRun, LoadVerifyRun).
type VerifyRun struct {
	At   time.Time     `json:"at"`
	Took time.Duration `json:"took_ns"`
	// Err is set when the verification could not run to the end; Result
	// is nil then.
	Err    string        `json:"error,omitempty"`
	Result *VerifyResult `json:"result,omitempty"`
}

// Telemetry is the compliance side of the page.
type Telemetry struct {
	Enabled bool
	// ConfigFile is the telemetry config path relative to the root.
	ConfigFile string
	// Problem says why the config or the CSV could not be read.
	Problem string
	// CSVFile is the dashboard CSV the points come from.
	CSVFile string
	// Points are the CSV rows that count (not dated in the future), in
	// file order.
	Points []Point
	// Min and Critical are thresholds.compliance_score_min and
	// thresholds.compliance_score_critical.
	Min, Critical float64
	LastCheck     time.Time
	// Alerts are the alerts firing now.
	Alerts []Alert
	// Channels are the enabled notification channels.
	Channels []Channel
}

// Point is one CSV row.
type Point struct {
	Date       time.Time
	Label      string // the row's date (or quarter) as written
	Score      float64
	Violations int
	Line       int
}

// Alert is one firing alert.
type Alert struct {
	Name    string
	Level   string // "critical" or "warning"
	Since   time.Time
	Reasons []string
}

// Channel is a notification channel's last delivery. Never a secret: the
// name only.
type Channel struct {
	Name         string
	LastDelivery time.Time
	// Pending names what is owed to this channel and not yet accepted.
	Pending []string
}

// Job is one scheduled job.
type Job struct {
	Name     string
	Schedule string
	LastRun  time.Time
	Duration time.Duration
	// Outcome is "ok", or the error of the last run; "" before any run.
	Outcome string
	NextRun time.Time
	Running bool
}

// RemotePin is one remote pin request.
type RemotePin struct {
	Service   string
	CID       string
	FilePath  string
	Status    string // queued, pinning, pinned, failed
	Updated   time.Time
	LastError string
}
