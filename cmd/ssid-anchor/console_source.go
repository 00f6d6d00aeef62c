package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/console"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
	"github.com/ssid/ssid-anchor/node"
	"github.com/ssid/ssid-anchor/telemetry"
)

// consoleSource builds the console's snapshots from the real state of the
// box: the tree (Root-24-LOCK, manifest, dashboard CSV, telemetry config
// and state), the appliance config and the open node. Nothing is invented:
// what it cannot read it reports as a problem on the page.
//
// The daemon creates one with newConsoleSource(g, n, started) and serves
// console.New(src, console.Options{...}) at "/". It owns the scheduler, so
// it sets Jobs; it sets RemotePins when the remote-pinning queue knows more
// than the manifest (last errors); and IPNSName once it publishes.
type consoleSource struct {
	g       *globalOptions
	n       *node.Node
	started time.Time

	// Jobs lists the scheduler's jobs (set by the daemon; nil shows the
	// "no scheduled jobs" state).
	Jobs func() []console.Job
	// RemotePins, when set, replaces the remote pin list read from the
	// manifest's records (which has no last error).
	RemotePins func() []console.RemotePin
	// IPNSName is the name the daemon last published the head manifest
	// under (n.IPNSName() after a successful PublishIPNS); nil or "" shows
	// "not published".
	IPNSName func() string

	verifying sync.Mutex // held while VerifyNow runs

	mu       sync.Mutex
	lastRun  *console.VerifyRun
	keepErr  string // why the kept last verification could not be read or written
	head     manifestCache
	headIdle *time.Timer          // drops head once the console is not viewed
	links    map[string]chainLink // by CID; content-addressed, so never stale
	maxChain int
}

// headKeep is how long the parsed head manifest is kept after the console
// was last viewed: 16,500 records are 10 MB a daemon nobody looks at need
// not hold.
const headKeep = 2 * time.Minute

// manifestCache keeps the parsed head manifest while the file is
// unchanged and the console is viewed: 20,000 records are megabytes of
// JSON, and the page is viewed far more often than anchoring rewrites it.
type manifestCache struct {
	size    int64
	modTime time.Time
	man     *anchor.Manifest
	cid     string
}

// consoleHandler is what the daemon mounts at "/" on its HTTP address, next
// to n.GatewayHandler() at "/ipfs/"; the source is returned so the daemon
// can set Jobs, RemotePins and IPNSName.
func consoleHandler(g *globalOptions, n *node.Node, started time.Time) (http.Handler, *consoleSource) {
	src := newConsoleSource(g, n, started)
	o := console.Options{Now: g.now, Log: g.log}
	// IP addresses and localhost always work; a listen address given as a
	// name is the name the box is opened by.
	if host, _, err := net.SplitHostPort(g.cfg.HTTP.Listen); err == nil && host != "" {
		o.Hosts = append(o.Hosts, host)
	}
	return console.New(src, o), src
}

func newConsoleSource(g *globalOptions, n *node.Node, started time.Time) *consoleSource {
	s := &consoleSource{g: g, n: n, started: started, links: map[string]chainLink{}, maxChain: 25}
	s.loadLastVerify()
	return s
}

// lastVerifyPath is where the console keeps its last verification: in the
// repo (the node's state, not the governance tree's), so a restarted
// daemon shows it again. The compact form keeps the file small: about ten
// bytes per record plus the first failures (console.MaxSavedVerify at
// most).
func lastVerifyPath(n *node.Node) string {
	return filepath.Join(n.RepoPath(), "console", "last_verify.json")
}

// loadLastVerify reads the kept verification; none is no verification yet,
// and a file that cannot be read is named on the page (and replaced by the
// next verification).
func (s *consoleSource) loadLastVerify() {
	p := lastVerifyPath(s.n)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var run *console.VerifyRun
	if err == nil {
		run, err = console.LoadVerifyRun(f)
		f.Close()
	}
	if err != nil {
		s.keepErr = fmt.Sprintf("The last verification kept in %s cannot be read (%v); the next verification replaces it.", p, err)
		s.g.log.Warn("console: the kept last verification cannot be read; the next verification replaces it", "file", p, "err", err)
		return
	}
	s.lastRun = run
}

// saveLastVerify keeps run in the repo, atomically (a crash leaves the old
// file or the new one).
func (s *consoleSource) saveLastVerify(run *console.VerifyRun) error {
	b, err := console.MarshalVerifyRun(run)
	if err != nil {
		return err
	}
	return tree.WriteFileAtomic(lastVerifyPath(s.n), b, 0o644)
}

// Snapshot implements console.Source.
func (s *consoleSource) Snapshot(ctx context.Context) (*console.Snapshot, error) {
	root, err := tree.OpenRoot(s.g.Root)
	if err != nil {
		return nil, fmt.Errorf("opening the governance tree: %w", err)
	}
	defer root.Close()
	snap := &console.Snapshot{ManifestPath: s.g.cfg.Paths.Manifest}
	snap.Node = console.Node{
		PeerID: s.n.PeerID(), Profile: s.n.Profile(), ConnectedPeers: s.n.ConnectedPeers(), Started: s.started,
	}
	if s.IPNSName != nil {
		snap.Node.IPNSName = s.IPNSName()
	}
	st := tree.CheckRoot24(root)
	snap.Node.Root24Lock, snap.Node.Root24Problems = st.Status(), st.Problems

	if err := s.readManifest(ctx, root, snap); err != nil {
		snap.ManifestProblem = err.Error()
	}
	if len(snap.Records) > 0 {
		// "Pinned" is what the repo's pin set holds, not the records'
		// flags: one listing of the pins for the whole page.
		cids := make([]string, len(snap.Records))
		for i := range snap.Records {
			cids[i] = snap.Records[i].IPFSCID
		}
		parsed := parseCIDs(cids)
		pinned, err := repoPinnedSet(ctx, s.n, parsed)
		if err != nil {
			snap.PinsProblem = err.Error()
		} else {
			snap.RepoPinned = make(map[string]bool, len(pinned))
			for i, c := range parsed {
				if c.Defined() && pinned[c.KeyString()] {
					snap.RepoPinned[cids[i]] = true
				}
			}
		}
	}
	s.mu.Lock()
	if s.lastRun != nil {
		v := *s.lastRun
		snap.Verify = &v
	}
	snap.VerifyProblem = s.keepErr
	s.mu.Unlock()

	snap.Telemetry = s.readTelemetry(root)

	if s.Jobs != nil {
		snap.Jobs = s.Jobs()
	}
	for _, svc := range s.g.cfg.RemotePinning.Services {
		snap.RemoteServices = append(snap.RemoteServices, svc.Name)
	}
	if s.RemotePins != nil {
		snap.RemotePins = s.RemotePins()
	} else {
		for _, r := range snap.Records {
			for _, p := range r.RemotePins {
				rp := console.RemotePin{Service: p.Service, CID: r.IPFSCID, FilePath: r.FilePath, Status: p.Status}
				rp.Updated, _ = time.Parse(time.RFC3339, p.UpdatedAt)
				snap.RemotePins = append(snap.RemotePins, rp)
			}
		}
	}
	return snap, nil
}

// readManifest fills records and the chain. A manifest that does not exist
// yet is the "no anchors yet" state, not a problem.
func (s *consoleSource) readManifest(ctx context.Context, root tree.Root, snap *console.Snapshot) error {
	rel := s.g.cfg.Paths.Manifest
	fi, err := root.Stat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("paths.manifest: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.headIdle == nil {
		s.headIdle = time.AfterFunc(headKeep, func() {
			s.mu.Lock()
			s.head = manifestCache{}
			s.mu.Unlock()
			releaseMemory()
		})
	} else {
		s.headIdle.Reset(headKeep)
	}
	c := &s.head
	if c.man == nil || c.size != fi.Size() || !c.modTime.Equal(fi.ModTime()) {
		man, raw, err := anchor.LoadManifestIn(root, rel)
		if err != nil {
			return err
		}
		params, _ := node.ParamsFor(node.CIDProfileDefault)
		mc, err := node.ComputeCID(bytes.NewReader(raw), params, nil)
		if err != nil {
			return fmt.Errorf("computing the manifest's CID: %w", err)
		}
		*c = manifestCache{size: fi.Size(), modTime: fi.ModTime(), man: man, cid: mc.String()}
		// Reading the manifest took several times its size in garbage:
		// hand it back now rather than hold it as the daemon's RSS.
		defer func() { go releaseMemory() }()
	}
	snap.Records = c.man.Records
	snap.Chain = []console.ManifestLink{manifestLink(c.cid, c.man, len(c.man.Records))}
	prev := c.man.PreviousCID
	for prev != "" {
		if len(snap.Chain) == s.maxChain {
			snap.ChainNote = fmt.Sprintf("The %d newest manifests are shown; `ssid-anchor verify` checks the whole chain.", s.maxChain)
			break
		}
		l, next, err := s.link(ctx, prev)
		if err != nil {
			snap.ChainNote = fmt.Sprintf("Manifest %s cannot be read from the repo: %v", prev, err)
			break
		}
		snap.Chain = append(snap.Chain, l)
		prev = next
	}
	return nil
}

// chainLink is a cached link plus where it points.
type chainLink struct {
	console.ManifestLink
	previous string
}

// link reads an earlier manifest from the node (cached by CID).
func (s *consoleSource) link(ctx context.Context, c string) (console.ManifestLink, string, error) {
	if l, ok := s.links[c]; ok {
		return l.ManifestLink, l.previous, nil
	}
	id, err := cid.Decode(c)
	if err != nil {
		return console.ManifestLink{}, "", fmt.Errorf("not a CID: %w", err)
	}
	buf := cappedBuffer{max: maxLinkedManifest}
	if _, err := s.n.ReadFile(ctx, id, maxLinkedManifest, &buf); err != nil {
		return console.ManifestLink{}, "", err
	}
	// Counted, not kept: a link shows its record count only.
	sum, err := anchor.SummarizeManifest(buf.Bytes())
	if err != nil {
		return console.ManifestLink{}, "", fmt.Errorf("not a manifest: %w", err)
	}
	l := manifestLink(c, sum.Head, sum.Records)
	s.links[c] = chainLink{l, sum.Head.PreviousCID}
	return l, sum.Head.PreviousCID, nil
}

// maxLinkedManifest bounds what one linked manifest may take in memory,
// whatever a previous_manifest_cid points at.
const maxLinkedManifest = 256 << 20

type cappedBuffer struct {
	bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, fmt.Errorf("larger than %d MiB: not a manifest", b.max>>20)
	}
	return b.Buffer.Write(p)
}

func manifestLink(c string, m *anchor.Manifest, records int) console.ManifestLink {
	l := console.ManifestLink{CID: c, Records: records}
	if raw, ok := m.Get("last_updated"); ok {
		_ = json.Unmarshal(raw, &l.LastUpdated)
	}
	// The signature (SPEC 2.2) names its signer; verify checks it.
	if raw, ok := m.Get("signature"); ok {
		var sig struct {
			PeerID string `json:"peer_id"`
		}
		if json.Unmarshal(raw, &sig) == nil {
			l.Signer = sig.PeerID
		}
	}
	return l
}

// readTelemetry reads the telemetry config, the dashboard CSV (every row,
// with the same rules as a check) and the telemetry state.
func (s *consoleSource) readTelemetry(root tree.Root) console.Telemetry {
	t := console.Telemetry{ConfigFile: s.g.cfg.Paths.TelemetryConfig}
	setup, err := ops.LoadTelemetryConfigIn(s.g.opsEnv(), root)
	if err != nil {
		t.Problem = err.Error()
		return t
	}
	cfg := setup.Config
	t.Enabled, t.Min, t.Critical = cfg.Enabled, cfg.Thresholds.ComplianceScoreMin, cfg.Thresholds.ComplianceScoreCritical
	if !t.Enabled {
		return t
	}
	if setup.Invalid != nil {
		t.Problem = fmt.Sprintf("telemetry config %s: %v", t.ConfigFile, setup.Invalid)
	}
	now := s.g.now()
	for _, rel := range s.g.cfg.Paths.DashboardCSV {
		f, err := root.Open(rel)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		t.CSVFile = rel
		if err != nil {
			t.Problem = err.Error()
			break
		}
		var pts []console.Point
		_, err = telemetry.ScanCSV(f, rel, now, func(r telemetry.Reading) {
			label := r.DateText
			pts = append(pts, console.Point{Date: r.Date, Label: label, Score: r.Score, Violations: r.Violations, Line: r.Line})
		})
		f.Close()
		if err != nil {
			t.Problem = err.Error()
		}
		t.Points = pts
		break
	}
	if t.CSVFile == "" && t.Problem == "" {
		t.Problem = fmt.Sprintf("no dashboard CSV: none of %v exists under the root", s.g.cfg.Paths.DashboardCSV)
	}

	// A missing state (no check ran yet) is an empty one.
	st, err := telemetry.LoadStateIn(root, s.g.cfg.Paths.TelemetryState)
	if err != nil {
		t.Problem = fmt.Sprintf("telemetry state (paths.telemetry_state): %v", err)
		return t
	}
	if st.LastCheck != nil {
		t.LastCheck = st.LastCheck.Time
	}
	names := make([]string, 0, len(st.Alerts))
	for name := range st.Alerts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		a := st.Alerts[name]
		if !a.Active {
			continue
		}
		al := console.Alert{Name: name, Level: a.Level, Reasons: a.Reasons}
		if a.FirstSeen != nil {
			al.Since = a.FirstSeen.Time
		}
		t.Alerts = append(t.Alerts, al)
	}
	// Last delivery per channel: the channel's own record (channels.<name>.
	// last_sent: any notice, alerts and registry events alike; a delivered
	// event notice leaves no other trace), or for a state written before
	// that record existed, the last alert it accepted. Owed: notices it has
	// not accepted yet.
	for _, ch := range cfg.EnabledChannels() {
		c := console.Channel{Name: ch}
		if cs := st.Channels[ch]; cs != nil && cs.LastSent != nil {
			c.LastDelivery = cs.LastSent.Time
		}
		for _, name := range names {
			a := st.Alerts[name]
			if slices.Contains(a.DeliveredTo, ch) {
				if a.LastSent != nil && a.LastSent.After(c.LastDelivery) {
					c.LastDelivery = a.LastSent.Time
				}
			} else if a.Notice != "" {
				c.Pending = append(c.Pending, name+" ("+a.Notice+")")
			}
		}
		for _, en := range st.EventNotices {
			if !slices.Contains(en.DeliveredTo, ch) {
				c.Pending = append(c.Pending, consolePlural(len(en.Events)+en.More, "registry event"))
			}
		}
		t.Channels = append(t.Channels, c)
	}
	return t
}

func consolePlural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// VerifyNow implements console.Source: it verifies every record against
// the tree and the node's repo, as `ssid-anchor verify` does, and keeps the
// result (compact, streamed: a large manifest's full report is never held)
// for the page and, in the repo, for the next start.
func (s *consoleSource) VerifyNow(ctx context.Context) error {
	if !s.verifying.TryLock() {
		return console.ErrBusy
	}
	defer s.verifying.Unlock()
	run := &console.VerifyRun{At: s.g.now()}
	t0 := time.Now()
	rec := &console.Recorder{}
	rep, err := s.verify(ctx, rec)
	run.Took = time.Since(t0)
	if err != nil {
		run.Err = err.Error()
	} else {
		run.Result = rec.Result(rep)
	}
	problem := ""
	if serr := s.saveLastVerify(run); serr != nil {
		problem = fmt.Sprintf("This verification could not be kept for the next start: %v", serr)
		s.g.log.Error("console: keeping the last verification", "file", lastVerifyPath(s.n), "err", serr)
	}
	s.mu.Lock()
	s.lastRun, s.keepErr = run, problem
	s.mu.Unlock()
	return err
}

func (s *consoleSource) verify(ctx context.Context, sink anchor.RecordSink) (*anchor.VerifyReport, error) {
	root, err := tree.OpenRoot(s.g.Root)
	if err != nil {
		return nil, fmt.Errorf("opening the governance tree: %w", err)
	}
	defer root.Close()
	// As cmd_verify does: Verify reads the manifest by path, against the
	// repo's chain head, with the config's trusted signers.
	vo := anchor.VerifyOptions{Root: root, ManifestPath: root.Path(s.g.cfg.Paths.Manifest), Log: s.g.log, Trust: s.g.cfg.Anchor.Trust, Sink: sink}
	ops.TreeVerifyOptions(&vo, s.g.cfg)
	if err := ops.RepoVerifyOptions(&vo, s.n); err != nil {
		return nil, err
	}
	return anchor.Verify(ctx, vo)
}
